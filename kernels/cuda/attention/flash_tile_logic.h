// Shared host/device logic of the flash-style paged prefill kernel: which CTA owns which query
// tile of which sequence, how a GQA group's heads are packed into a tile's rows, the causal key
// limit of a row, and a key's address through the block table. Compiled by nvcc and by the host
// compiler (tests/unit/cuda_tile_logic_test.cc).
// Invariant: every (sequence with >= kMinRun queries, tile) pair maps to exactly one slot in
// [0, num_slots); other slots are idle; no key at or past a row's limit is ever addressed.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define TESSERA_FLASH_HD __host__ __device__ __forceinline__
#else
#define TESSERA_FLASH_HD inline
#endif

namespace tessera::kernels::cuda::flash {

constexpr int kRows = 64;     // query rows per CTA: tokens x packed heads
constexpr int kKeyTile = 64;  // keys per streamed K/V tile
constexpr int kMinRun = 16;   // sequences with at least this many queries take the flash path

// Query heads of one GQA group packed into a tile: the largest power of two <= 8 dividing the
// group. Rows are (token, head) with the head fastest: row r = token (r / hc), head (r % hc).
TESSERA_FLASH_HD int heads_per_cta(int64_t group) {
  int h = 8;
  while (h > 1 && group % h != 0) h >>= 1;
  return h;
}
TESSERA_FLASH_HD int tokens_per_cta(int hc) { return kRows / hc; }

// Sequence s (query rows [qs_s, qs_s + n_s) of the packed batch) owns tile slots
// [slot_base, slot_base + ceil(n_s / T)); bases strictly increase with s and never overlap.
TESSERA_FLASH_HD int64_t slot_base(int64_t qs_s, int64_t s, int T) { return qs_s / T + s; }
TESSERA_FLASH_HD int64_t num_slots(int64_t num_tokens, int64_t num_seqs, int T) {
  return num_tokens / T + num_seqs;
}

// Slot -> (sequence, tile index within it). Returns false for an idle slot: past the sequence's
// last tile, or a sequence shorter than min_run (those stay on the split-K kernel).
TESSERA_FLASH_HD bool find_tile(const int32_t* query_start, int64_t num_seqs, int T, int min_run,
                                int64_t slot, int64_t* seq, int64_t* tile) {
  int64_t lo = 0, hi = num_seqs;  // largest s with slot_base(s) <= slot
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (slot_base(query_start[mid], mid, T) <= slot)
      lo = mid;
    else
      hi = mid;
  }
  const int64_t n = query_start[lo + 1] - query_start[lo];
  const int64_t t = slot - slot_base(query_start[lo], lo, T);
  *seq = lo;
  *tile = t;
  return n >= min_run && t >= 0 && t * T < n;
}

// Whether the split-K kernel leaves a sequence of n queries to the flash kernel.
TESSERA_FLASH_HD bool flash_owns(int64_t n, int min_run) { return min_run > 0 && n >= min_run; }

// Keys visible to query i (0-based within its sequence's n queries): keys [0, limit).
TESSERA_FLASH_HD int64_t key_limit(int64_t seq_len, int64_t n, int64_t i) {
  return seq_len - n + i + 1;
}

// Key j's cache block (through the block table) and slot in it; 32-bit division (keys and
// block sizes fit in int32, as seq_lens do). Row offset = block * block_stride + slot *
// slot_stride.
TESSERA_FLASH_HD void key_block_slot(const int32_t* table, int64_t j, int64_t block_size,
                                     int64_t* block, int64_t* slot) {
  const int jj = static_cast<int>(j), bs = static_cast<int>(block_size);
  *block = table[jj / bs];
  *slot = jj % bs;
}

}  // namespace tessera::kernels::cuda::flash

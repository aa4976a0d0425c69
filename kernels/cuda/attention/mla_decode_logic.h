// Shared host/device logic of the MLA decode kernel (mla_decode.cu): the CTA's head block, the
// warp roles of its three phases (partial scores, softmax, P V), the key tiles of a partition and
// the split choice. Compiled by nvcc and by the host compiler
// (tests/unit/mla_decode_logic_test.cc). Invariant: for every (token, head block, partition) the
// tiles cover the partition's keys [begin, end) exactly once; every (head row, key) of a tile has
// exactly one softmax thread and every (head row, value column) exactly one P V warp.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define TESSERA_MLA_HD __host__ __device__ __forceinline__
#else
#define TESSERA_MLA_HD inline
#endif

namespace tessera::kernels::cuda::mla {

constexpr int kThreads = 256;  // 8 warps
constexpr int kWarps = kThreads / 32;
constexpr int kKeys = 32;            // keys per streamed tile (two halves of 16)
constexpr int kMaxDim = 576;         // latent row (kv_lora 512 + rope 64)
constexpr int kMaxVDim = 512;        // value columns (the latent's first 512 values)
constexpr int kPitch = kMaxDim + 8;  // elements per staged row: 16 B pad, ldmatrix conflict-free
constexpr int kSPitch = 20;          // floats per row of a warp's 16 x 16 partial-score tile
constexpr int kMinPartitionKeys = 256;

// Head rows per CTA: mt m16 tiles (1 when H <= 16, else 2: 32 heads).
TESSERA_MLA_HD int m_tiles(int64_t num_heads) { return num_heads <= 16 ? 1 : 2; }
TESSERA_MLA_HD int64_t head_blocks(int64_t num_heads, int mt) {
  return (num_heads + 16 * mt - 1) / (16 * mt);
}

// Shared memory: Q hi + lo (32 rows), two K stages (32 keys), 8 partial-score tiles, softmax
// state (m, l, alpha per row).
constexpr int kSmemQ = 2 * 32 * kPitch * 2;
constexpr int kSmemK = 2 * kKeys * kPitch * 2;
constexpr int kSmemS = kWarps * 16 * kSPitch * 4;
constexpr int kSmemBytes = kSmemQ + kSmemK + kSmemS + 3 * 32 * 4;

// Phase A (scores): warp w -> head tile, key half (16 keys), dim split (4 / mt ways over the
// 16-wide k-steps: steps ds, ds + splits, ...).
struct ScoreRole {
  int mt_idx, key_half, dim_split, splits;
};
TESSERA_MLA_HD ScoreRole score_role(int warp, int mt) {
  const int per_tile = kWarps / mt;  // 8 or 4
  const int w = warp % per_tile;
  return {warp / per_tile, w & 1, w >> 1, per_tile / 2};
}
// The warp whose partial-score tile holds (head tile, key half, dim split); split 0's tile
// receives P after the softmax.
TESSERA_MLA_HD int score_warp(int mt_idx, int key_half, int dim_split, int mt) {
  return mt_idx * (kWarps / mt) + dim_split * 2 + key_half;
}

// Phase B (softmax): 16 * mt rows x kKeys keys over kThreads threads; a row's threads are
// consecutive lanes of one warp (tpr = 8 or 16 divides 32).
TESSERA_MLA_HD int softmax_threads_per_row(int mt) { return kThreads / (16 * mt); }
TESSERA_MLA_HD int softmax_keys_per_thread(int mt) { return kKeys / softmax_threads_per_row(mt); }
TESSERA_MLA_HD void softmax_role(int tid, int mt, int* row, int* key0) {
  const int tpr = softmax_threads_per_row(mt);
  *row = tid / tpr;
  *key0 = (tid % tpr) * softmax_keys_per_thread(mt);
}

// Phase C (P V): warp w -> head tile and a slice of value columns (8 / mt ways of kMaxVDim).
TESSERA_MLA_HD int pv_width(int mt) { return kMaxVDim / (kWarps / mt); }  // 64 or 128
TESSERA_MLA_HD void pv_role(int warp, int mt, int* mt_idx, int* col0) {
  const int per_tile = kWarps / mt;
  *mt_idx = warp / per_tile;
  *col0 = (warp % per_tile) * pv_width(mt);
}

// Keys [begin, end) of partition `part` for a token with num_keys visible keys; empty when the
// partition starts past them. partition_keys <= 0: one partition holds every key.
TESSERA_MLA_HD void partition_range(int64_t num_keys, int part, int64_t partition_keys,
                                    int64_t* begin, int64_t* end) {
  const int64_t pk = partition_keys > 0 ? partition_keys : num_keys;
  const int64_t b = static_cast<int64_t>(part) * pk;
  *begin = b < num_keys ? b : num_keys;
  const int64_t e = b + pk;
  *end = e < num_keys ? e : num_keys;
}

// Partitions so that ~2 waves of CTAs (one resident per SM: ~156 KiB of shared memory) cover the
// grid, none shorter than kMinPartitionKeys. ctas: tokens x head blocks.
inline int64_t choose_partitions(int64_t ctas, int num_sms, int64_t max_seq_len) {
  int64_t parts = (2LL * num_sms + ctas - 1) / (ctas > 0 ? ctas : 1);
  const int64_t max_parts = (max_seq_len + kMinPartitionKeys - 1) / kMinPartitionKeys;
  if (parts > max_parts) parts = max_parts;
  return parts < 1 ? 1 : parts;
}

}  // namespace tessera::kernels::cuda::mla

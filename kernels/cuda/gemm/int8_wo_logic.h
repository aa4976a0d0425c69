// Tiling, split-K choice, fragment layout and i8 -> bf16 conversion of the tensor-core
// weight-only INT8 GEMM (gemm_int8.cu wo_mma_kernel), as __host__ __device__ helpers with no CUDA
// include, so tests/unit/int8_wo_logic_test.cc checks them and mirrors the kernel's arithmetic.
// Invariant: for every tile shape, (warp, fragment, lane, register) covers each output of a CTA
// tile exactly once, the k permutation of A and B fragments is the same bijection of [0, 16),
// and the splits of a K range cover every k stage exactly once.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/cuda/common/bits.h"

#if defined(__CUDACC__)
#define TESSERA_WO_HD __host__ __device__ __forceinline__
#else
#define TESSERA_WO_HD inline
#endif

namespace tessera::kernels::cuda::wo {

// ---- CTA tiles: 4 warps; kBN = 64 weight rows, kBK = 64 k values per pipeline stage ----

inline constexpr int kThreads = 128;
inline constexpr int kBN = 64;
inline constexpr int kBK = 64;
// Shared pitches. Weight rows: 64 bytes + 16 (20 words): the 8 rows x 4 words a B fragment
// load touches fall in 32 distinct banks. x rows: 64 f32 + 16 (80 words, = 16 mod 32): the 2 rows
// x 4 float4 of one quarter-warp phase of an A fragment load fall in 8 distinct bank quads.
inline constexpr int kWPitch = kBK + 16;  // bytes
inline constexpr int kXPitch = kBK + 16;  // floats

// Tile shape by M: decode (M <= kSmallM) uses 16-row tiles with the 4 warps side by side along
// N (each 16 x 16); larger M uses 64 x 64 tiles with 2 x 2 warps of 32 x 32.
inline constexpr int64_t kSmallM = 16;
template <int kBM>
struct Shape {
  static_assert(kBM == 16 || kBM == 64, "two tile shapes only");
  static constexpr int kWarpsM = kBM == 16 ? 1 : 2;
  static constexpr int kWarpsN = 4 / kWarpsM;
  static constexpr int kMF = kBM / (16 * kWarpsM);  // m16 fragments per warp
  static constexpr int kNF = kBN / (8 * kWarpsN);   // n8 fragments per warp
  static constexpr int kStages = kBM == 16 ? 4 : 3;
  static constexpr int kXStageBytes = kBM * kXPitch * 4;
  static constexpr int kWStageBytes = kBN * kWPitch;
  static constexpr int kXaBytes = (kBM / 16) * (kBK / 16) * 2 * 32 * 16;  // see xa_index
  // [kStages] x f32 stages, then [kStages] weight stages, then the A fragments (one stage).
  static constexpr int kSmemBytes = kStages * (kXStageBytes + kWStageBytes) + kXaBytes;
};

TESSERA_WO_HD int tile_m(int64_t m) { return m <= kSmallM ? 16 : 64; }
TESSERA_WO_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Split-K factor: when the output tiles give fewer than ~4 CTAs per SM (decode), K stages are
// split over about that many CTAs per SM, each split keeping >= 4 stages (a full pipeline), at
// most 32 splits, and the f32 partials ([splits, M, N], written once each, summed in split order
// by a second kernel) at most 1/8 of the weight bytes. 1 means no split.
TESSERA_WO_HD int splits(int64_t m, int64_t n, int64_t k, int num_sms) {
  const int64_t tiles = ceil_div(m, tile_m(m)) * ceil_div(n, kBN);
  const int64_t k_tiles = ceil_div(k, kBK);
  const int64_t target = 4 * static_cast<int64_t>(num_sms);
  if (tiles >= target || k_tiles < 8) return 1;
  int64_t s = ceil_div(target, tiles);
  if (s > k_tiles / 4) s = k_tiles / 4;
  if (s > k / (32 * m)) s = k / (32 * m);  // s * M * N * 4 * 8 <= N * K
  if (s > 32) s = 32;
  return s < 1 ? 1 : static_cast<int>(s);
}
TESSERA_WO_HD int64_t workspace_floats(int64_t m, int64_t n, int64_t k, int num_sms) {
  const int s = splits(m, n, k, num_sms);
  return s > 1 ? s * m * n : 0;
}
// K stages [split_begin(z), split_begin(z + 1)) of split z.
TESSERA_WO_HD int64_t split_begin(int64_t k_tiles, int z, int num_splits) {
  return k_tiles * z / num_splits;
}

// Whether the tensor-core kernel takes a problem: sm_80+, 16-byte cp.async sources (x rows of
// whole float4, weight rows of whole 16-byte chunks, aligned bases) and K % 16 == 0, so every
// 16-byte chunk is entirely inside or entirely past K. Others take the CUDA-core kernel.
TESSERA_WO_HD bool mma_eligible(int sm_major, uintptr_t x, int64_t ldx, uintptr_t w, int64_t ldw,
                                int64_t k) {
  return sm_major >= 8 && x % 16 == 0 && ldx % 4 == 0 && w % 16 == 0 && ldw % 16 == 0 &&
         k % 16 == 0;
}

// ---- stage loads: 16-byte chunks, thread t takes chunks t, t + kThreads, ... ----

// Weight stage [kBN rows, kBK bytes]: chunk c is row c / 4, byte 16 * (c % 4); 256 chunks.
inline constexpr int kWChunks = kBN * kBK / 16;
TESSERA_WO_HD int w_chunk_row(int c) { return c / (kBK / 16); }
TESSERA_WO_HD int w_chunk_k(int c) { return 16 * (c % (kBK / 16)); }
// x stage [kBM rows, kBK f32]: chunk c is row c / 16, k 4 * (c % 16); rows >= M are never
// loaded (they are zeroed once per CTA and stay zero).
TESSERA_WO_HD int x_chunk_row(int c) { return c / (kBK / 4); }
TESSERA_WO_HD int x_chunk_k(int c) { return 4 * (c % (kBK / 4)); }

// ---- fragments of mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (PTX ISA), groupID
// g = lane / 4, t = lane % 4. The k order inside a k16 step is permuted (the dot is a sum, so
// any bijection shared by A and B is exact): the mma's k positions 2t, 2t+1 hold real k 4t, 4t+1
// and 2t+8, 2t+9 hold 4t+2, 4t+3, so a thread reads one float4 of x per row and one 32-bit word
// (4 consecutive i8) of a weight row per n8 fragment. ----

// A (16 x 16): register r (pair of bf16) holds row a_row(lane, r), real k a_k(lane, r) + {0, 1}.
TESSERA_WO_HD int a_row(int lane, int r) { return (lane >> 2) + ((r & 1) ? 8 : 0); }
TESSERA_WO_HD int a_k(int lane, int r) { return (lane & 3) * 4 + ((r & 2) ? 2 : 0); }
// The mma's own k position of A register r's low element (PTX layout): 2t + 8 * (r >= 2).
TESSERA_WO_HD int a_mma_k(int lane, int r) { return (lane & 3) * 2 + ((r & 2) ? 8 : 0); }
// B (16 x 8, column n = weight row n): register r holds column b_col(lane), real k b_k(lane, r)
// + {0, 1}; its PTX k position is b_mma_k(lane, r).
TESSERA_WO_HD int b_col(int lane) { return lane >> 2; }
TESSERA_WO_HD int b_k(int lane, int r) { return (lane & 3) * 4 + 2 * r; }
TESSERA_WO_HD int b_mma_k(int lane, int r) { return (lane & 3) * 2 + 8 * r; }
// C (16 x 8 f32): register r is (c_row(lane, r), c_col(lane, r)).
TESSERA_WO_HD int c_row(int lane, int r) { return (lane >> 2) + (r >= 2 ? 8 : 0); }
TESSERA_WO_HD int c_col(int lane, int r) { return (lane & 3) * 2 + (r & 1); }

// Tile-local output row / column of (warp, fragment, lane, register) for tile shape S.
template <class S>
TESSERA_WO_HD int out_row(int warp, int mi, int lane, int r) {
  return (warp / S::kWarpsN) * (16 * S::kMF) + mi * 16 + c_row(lane, r);
}
template <class S>
TESSERA_WO_HD int out_col(int warp, int ni, int lane, int r) {
  return (warp % S::kWarpsN) * (8 * S::kNF) + ni * 8 + c_col(lane, r);
}

// ---- A fragments in shared memory: once per stage the CTA splits its x stage into bf16 hi
// and lo, stored in fragment order so each warp reads a fragment with one 16-byte load per
// lane: uint4 xa[kBM / 16][kBK / 16][2 (hi, lo)][32 lanes], uint4 = A registers 0..3. ----

inline constexpr int kKSteps = kBK / 16;
// Slot s (thread t converts slots t, t + kThreads, ...) is (m fragment, k step, lane).
TESSERA_WO_HD int slot_mfrag(int s) { return s / (32 * kKSteps); }
TESSERA_WO_HD int slot_kstep(int s) { return (s / 32) % kKSteps; }
TESSERA_WO_HD int slot_lane(int s) { return s % 32; }
// uint4 index of (m fragment, k step, half 0 = hi / 1 = lo, lane).
TESSERA_WO_HD int xa_index(int mfrag, int kstep, int half, int lane) {
  return ((mfrag * kKSteps + kstep) * 2 + half) * 32 + lane;
}

// ---- i8 -> bf16, exact: 4 weight bytes (little-endian word) -> two bf16 pairs ----

// PTX prmt (default mode): byte i of the result is byte (s >> 4i) & 7 of the 8 bytes {b, a}.
TESSERA_WO_HD uint32_t byte_perm(uint32_t a, uint32_t b, uint32_t s) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(a, b, s);
#else
  const uint64_t v = (static_cast<uint64_t>(b) << 32) | a;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i)
    r |= static_cast<uint32_t>((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
  return r;
#endif
}

// Byte b (signed) -> b as f32 without an int -> float conversion: u = b + 128 (the sign bit
// flipped) placed in the mantissa of 2^23 gives f32(2^23 + u), and minus (2^23 + 128) that is b
// exactly. An integer |b| <= 128 has <= 8 significant bits, so the upper 16 bits of its f32 are
// exactly its bf16: b0 = (bf16(byte 0), bf16(byte 1)), b1 = (bf16(byte 2), bf16(byte 3)), low
// half first. 4 prmt + 4 fsub + 2 prmt per 4 weights.
TESSERA_WO_HD void i8x4_to_bf16x2(uint32_t word, uint32_t& b0, uint32_t& b1) {
  const uint32_t u = word ^ 0x80808080u;
  constexpr float kMagic = 8388736.0f;  // 2^23 + 128
  const uint32_t f0 = f32_bits(bits_f32(byte_perm(u, 0x4b000000u, 0x7650)) - kMagic);
  const uint32_t f1 = f32_bits(bits_f32(byte_perm(u, 0x4b000000u, 0x7651)) - kMagic);
  const uint32_t f2 = f32_bits(bits_f32(byte_perm(u, 0x4b000000u, 0x7652)) - kMagic);
  const uint32_t f3 = f32_bits(bits_f32(byte_perm(u, 0x4b000000u, 0x7653)) - kMagic);
  b0 = byte_perm(f0, f1, 0x7632);
  b1 = byte_perm(f2, f3, 0x7632);
}

}  // namespace tessera::kernels::cuda::wo

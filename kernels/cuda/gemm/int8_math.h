// Index and quantisation math of the CUDA INT8 GEMMs (gemm_int8.cu), as __host__ __device__
// helpers with no CUDA include, so a host unit test (tests/ops/ops_cases_int8.cc) checks them
// against the reference: the per-token quantisation formula, the output scaling order, the
// fragment layout of mma.sync.m16n8k32 s8 and the shared-memory tile addressing.
// Invariant: quantize_value / scale_of_amax / scale_output are kernels/ref/int8_matmul.h's
// formulas token for token (IEEE division, round half to even, (dot * s_m) * w_scale[n]).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define TESSERA_INT8_HD __host__ __device__ __forceinline__
#else
#define TESSERA_INT8_HD inline
#endif

namespace tessera::kernels::cuda::int8 {

// ---- quantisation (per token) ----

// s_m = max|x_m| / 127.
TESSERA_INT8_HD float scale_of_amax(float amax) { return amax / 127.0f; }

// q = clamp(rint(x / s), -127, 127); 0 when s == 0. NOTE: rintf rounds half to even on the
// host (default rounding mode) and compiles to cvt.rni on the device; x / s is an IEEE division
// (the build never uses -use_fast_math / -prec-div=false).
TESSERA_INT8_HD int8_t quantize_value(float x, float s) {
  if (s == 0.0f) return 0;
  const float v = rintf(x / s);
  return static_cast<int8_t>(fminf(fmaxf(v, -127.0f), 127.0f));
}

// out = (f32(dot) * s_m) * w_scale[n], in that order.
TESSERA_INT8_HD float scale_output(int32_t dot, float x_scale, float w_scale) {
  const float d = static_cast<float>(dot);
  return d * x_scale * w_scale;
}

// ---- tiling of the W8A8 GEMM: a CTA computes kBM x kBN outputs, kBK bytes of K per stage ----

inline constexpr int kBM = 64;
inline constexpr int kBN = 64;
inline constexpr int kBK = 64;
inline constexpr int kWarpsM = 2;  // 4 warps, 2 x 2, each 32 x 32 outputs
inline constexpr int kWarpsN = 2;
inline constexpr int kThreads = 32 * kWarpsM * kWarpsN;
inline constexpr int kWarpM = kBM / kWarpsM;  // 32: two m16 fragments
inline constexpr int kWarpN = kBN / kWarpsN;  // 32: four n8 fragments
// Shared rows are padded from 64 to 80 bytes (20 words): the 8 rows a fragment load touches
// then start in 8 distinct bank groups of 4, so fragment loads are conflict-free.
inline constexpr int kSmemPitch = kBK + 16;

// Row stride (bytes) of the quantised activations: K rounded up to kBK, zero padded, so every
// stage of A is whole and 16-byte aligned.
TESSERA_INT8_HD int64_t q_ldq(int64_t k) { return (k + kBK - 1) / kBK * kBK; }

// Split-K factor of the W8A8 GEMM: when the output tiles fill fewer than ~4 CTAs per SM
// (decode, small M), K stages are split into about that many CTAs per SM, each split keeping at
// least 2 stages; splits add their int32 partials atomically (exact, order-free) into a
// workspace that a second kernel scales. 1 means no split.
TESSERA_INT8_HD int w8a8_splits(int64_t m, int64_t n, int64_t k, int num_sms) {
  const int64_t tiles = ((m + kBM - 1) / kBM) * ((n + kBN - 1) / kBN);
  const int64_t k_tiles = (k + kBK - 1) / kBK;
  const int64_t target = 4 * static_cast<int64_t>(num_sms);
  if (tiles >= target || k_tiles < 4) return 1;
  int64_t s = (target + tiles - 1) / tiles;
  if (s > k_tiles / 2) s = k_tiles / 2;
  if (s > 32) s = 32;
  return s < 1 ? 1 : static_cast<int>(s);
}

// K stages [begin, end) of split z of `splits` over k_tiles stages (every stage exactly once).
TESSERA_INT8_HD int64_t split_begin(int64_t k_tiles, int z, int splits) {
  return k_tiles * z / splits;
}

// Byte offset of (row, k byte) inside one smem tile.
TESSERA_INT8_HD int smem_offset(int row, int kbyte) { return row * kSmemPitch + kbyte; }

// Global -> shared copy of one stage: thread t copies 16-byte chunks t, t + kThreads, ...;
// chunk c of a [kBM or kBN] x kBK tile is (row c / 4, k byte 16 * (c % 4)).
inline constexpr int kChunksPerRow = kBK / 16;
inline constexpr int kChunksPerTile = kBM * kChunksPerRow;  // 256 (kBM == kBN)
TESSERA_INT8_HD int chunk_row(int c) { return c / kChunksPerRow; }
TESSERA_INT8_HD int chunk_kbyte(int c) { return 16 * (c % kChunksPerRow); }

// ---- fragments of mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 (PTX ISA "Matrix
// fragments for mma.m16n8k32"), groupID = lane / 4, threadID_in_group = lane % 4 ----

// A (16 x 32, row-major), 4 registers of 4 bytes: register r holds row frag_a_row(lane, r),
// bytes k = frag_a_k(lane, r) .. + 3.
TESSERA_INT8_HD int frag_a_row(int lane, int r) { return (lane >> 2) + ((r & 1) ? 8 : 0); }
TESSERA_INT8_HD int frag_a_k(int lane, int r) { return (lane & 3) * 4 + ((r & 2) ? 16 : 0); }
// B (32 x 8, "col": column n is weight row n), 2 registers: register r holds column
// frag_b_col(lane), bytes k = frag_b_k(lane, r) .. + 3.
TESSERA_INT8_HD int frag_b_col(int lane) { return lane >> 2; }
TESSERA_INT8_HD int frag_b_k(int lane, int r) { return (lane & 3) * 4 + (r ? 16 : 0); }
// C/D (16 x 8 int32), 4 registers: register r is (frag_c_row(lane, r), frag_c_col(lane, r)).
TESSERA_INT8_HD int frag_c_row(int lane, int r) { return (lane >> 2) + (r >= 2 ? 8 : 0); }
TESSERA_INT8_HD int frag_c_col(int lane, int r) { return (lane & 3) * 2 + (r & 1); }

}  // namespace tessera::kernels::cuda::int8

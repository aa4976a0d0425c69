// Shared host/device logic of the block-scaled FP8 GEMM: e4m3 encode/decode, the per-row
// 128-wide activation scale, and the split-K / tile choice. Compiled by nvcc (as __host__
// __device__) and by the host compiler (tests/unit/cuda_tile_logic_test.cc).
// Invariant: no CUDA headers (only common/bits.h); encode matches kernels::f32_to_fp8_e4m3
// (round to nearest even, saturate to +-448, NaN -> 0x7f | sign).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/cuda/common/bits.h"

#if defined(__CUDACC__)
#define TESSERA_HD __host__ __device__ __forceinline__
#else
#define TESSERA_HD inline
#endif

namespace tessera::kernels::cuda::fp8 {

constexpr int kGroup = 128;  // activation group width == weight block (both dims)
constexpr float kE4m3Max = 448.0f;

// f32 -> e4m3 (OCP "fn"): round to nearest even, |x| >= 464 saturates to 448, NaN -> 0x7f.
TESSERA_HD uint8_t e4m3_encode(float f) {
  const uint32_t bits = f32_bits(f);
  const uint32_t sign = (bits >> 24) & 0x80u;
  const uint32_t a = bits & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint8_t>(sign | 0x7fu);
  if (a >= 0x43e80000u) return static_cast<uint8_t>(sign | 0x7eu);  // 464.0f
  if (a >= 0x3c800000u) {                                           // >= 2^-6: normal
    const uint32_t r = a + 0x7ffffu + ((a >> 20) & 1u);             // RNE at mantissa bit 20
    uint32_t code = (r >> 20) - (120u << 3);                        // rebias 127 -> 7
    if (code > 0x7eu) code = 0x7eu;
    return static_cast<uint8_t>(sign | code);
  }
  // Subnormal: value = mant * 2^-9; mant 8 rounds up into the smallest normal (code 0x08).
  const float scaled = bits_f32(a) * 512.0f;  // exact
  return static_cast<uint8_t>(sign | static_cast<uint32_t>(rintf(scaled)));
}

TESSERA_HD float e4m3_decode(uint8_t v) {
  const uint32_t sign = static_cast<uint32_t>(v & 0x80u) << 24;
  const uint32_t e = (v >> 3) & 0xfu, m = v & 0x7u;
  if (e == 0xfu && m == 0x7u) return bits_f32(sign | 0x7fc00000u);
  if (e == 0) return bits_f32(sign | f32_bits(static_cast<float>(m) * 0.001953125f));
  return bits_f32(sign | ((e + 120u) << 23) | (m << 20));
}

// Dequantisation scale of one activation group from its max |x| (NaN ignored by the caller):
// amax / 448, or 1 for an all-zero group (codes are then all zero).
TESSERA_HD float act_scale(float amax) { return amax > 0.0f ? amax / kE4m3Max : 1.0f; }

// Code of x in a group with scale `s` (x / s is IEEE division on host and device).
TESSERA_HD uint8_t act_code(float x, float s) { return e4m3_encode(x / s); }

// Residual code of x (decode/small batches, M <= 16): x ~ s * (e4m3(hi) + e4m3(lo)), the lo
// code quantising x / s - e4m3(hi) in the same units (subnormals included). Cuts the GEMM's
// NMSE from ~6e-4 to ~4e-7; the kernel runs one more mma on the same weight fragment.
TESSERA_HD uint8_t act_code_lo(float x, float s, uint8_t hi) {
  return e4m3_encode(fmaf(-e4m3_decode(hi), s, x) / s);
}

TESSERA_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Split-K choice: enough CTAs (tiles * splits) for ~2 waves over num_sms, each split keeping
// >= 2 K groups, at most 16 splits. Returns 1 when the tiles alone fill the machine.
TESSERA_HD int choose_splits(int64_t tiles, int64_t groups, int num_sms) {
  const int64_t want = 2 * static_cast<int64_t>(num_sms);
  if (tiles >= want || groups < 4) return 1;
  int64_t s = ceil_div(want, tiles);
  if (s > groups / 2) s = groups / 2;
  if (s > 16) s = 16;
  return s < 1 ? 1 : static_cast<int>(s);
}

// K groups [begin, end) of split z when `groups` are cut into `splits` near-equal runs.
TESSERA_HD void split_range(int64_t groups, int splits, int z, int64_t* begin, int64_t* end) {
  const int64_t per = ceil_div(groups, splits);
  *begin = z * per < groups ? z * per : groups;
  *end = *begin + per < groups ? *begin + per : groups;
}

}  // namespace tessera::kernels::cuda::fp8

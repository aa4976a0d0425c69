// Block-scaled FP8 matmul kernel shared by fp8_matmul_avx2.cc and fp8_matmul_avx512.cc: include
// it only from a file built with at least -mavx2 -mfma -mf16c; with TESSERA_FP8_AVX512=1 (and
// AVX-512 F/BW flags) a step is 32 weights in 512-bit registers, otherwise 16 in 256-bit ones.
// NOTE: e4m3 -> f16 is a bit move: sign to bit 15, exponent+mantissa shifted left by 7 gives
// value * 2^-8 exactly for normal and subnormal codes (F16C then widens exactly); NaN codes
// get an all-ones f16 exponent. The 2^8 is folded into the block scale.
// Invariant: internal linkage only, so the two ISA builds never share a symbol.
#pragma once

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "fp8_matmul_simd.h needs -mavx2 -mfma -mf16c"
#endif

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/common/types.h"
#include "kernels/ref/fp8_matmul.h"

namespace tessera::kernels::cpu {
namespace {

#if TESSERA_FP8_AVX512
struct Fp8Vec {
  using F = __m512;
  static constexpr int kStep = 32;  // weights decoded per step, as two F of 16
  static F zero() { return _mm512_setzero_ps(); }
  static F set1(float v) { return _mm512_set1_ps(v); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  // NOTE: the maskz forms: GCC 12 warns on the plain extracts' undefined pass-through operand.
  static float hsum(F v) {
    __m256 y = _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xff, v, 0),
                             _mm512_maskz_extractf32x8_ps(0xff, v, 1));
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(y), _mm256_extractf128_ps(y, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
  }
  static void decode(const uint8_t* w, F* lo, F* hi) {
    const __m512i v = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
    const __m512i mag = _mm512_and_si512(v, _mm512_set1_epi16(0x7f));
    const __m512i sign =
        _mm512_and_si512(_mm512_slli_epi16(v, 8), _mm512_set1_epi16(static_cast<short>(0x8000)));
    __m512i h = _mm512_or_si512(sign, _mm512_slli_epi16(mag, 7));
    const __mmask32 nan = _mm512_cmpeq_epi16_mask(mag, _mm512_set1_epi16(0x7f));
    h = _mm512_mask_mov_epi16(h, nan, _mm512_or_si512(h, _mm512_set1_epi16(0x7c00)));
    *lo = _mm512_cvtph_ps(_mm512_maskz_extracti64x4_epi64(0xf, h, 0));
    *hi = _mm512_cvtph_ps(_mm512_maskz_extracti64x4_epi64(0xf, h, 1));
  }
};
#else
struct Fp8Vec {
  using F = __m256;
  static constexpr int kStep = 16;  // weights decoded per step, as two F of 8
  static F zero() { return _mm256_setzero_ps(); }
  static F set1(float v) { return _mm256_set1_ps(v); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static float hsum(F v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
  }
  static void decode(const uint8_t* w, F* lo, F* hi) {
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
    const __m256i mag = _mm256_and_si256(v, _mm256_set1_epi16(0x7f));
    const __m256i sign =
        _mm256_and_si256(_mm256_slli_epi16(v, 8), _mm256_set1_epi16(static_cast<short>(0x8000)));
    const __m256i nan = _mm256_and_si256(_mm256_cmpeq_epi16(mag, _mm256_set1_epi16(0x7f)),
                                         _mm256_set1_epi16(0x7c00));
    const __m256i h = _mm256_or_si256(_mm256_or_si256(sign, _mm256_slli_epi16(mag, 7)), nan);
    *lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    *hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
  }
};
#endif

using V = Fp8Vec;
constexpr float kF16Shift = 256.0f;  // decode() yields value * 2^-8

// One kStep of weights against R activation rows into the accumulator pair (a0, a1).
template <int R>
inline void fp8_step(const uint8_t* w, const float* const* x, int64_t c, V::F* a0, V::F* a1) {
  V::F lo, hi;
  V::decode(w + c, &lo, &hi);
  for (int r = 0; r < R; ++r) {
    a0[r] = V::fma(lo, V::load(x[r] + c), a0[r]);
    a1[r] = V::fma(hi, V::load(x[r] + c + V::kStep / 2), a1[r]);
  }
}

// res[r] = dot(x[r], dequant(weight row j)) for R activation rows.
template <int R>
inline void fp8_dot(const BlockScaledMatmulArgs& a, int64_t j, const float* const* x, float* res) {
  const uint8_t* w = a.w + j * a.w_stride;
  const float* s = a.scale_inv + (j / a.block_n) * a.scale_stride;
  V::F total[R];
  float tail[R];
  for (int r = 0; r < R; ++r) {
    total[r] = V::zero();
    tail[r] = 0.0f;
  }
  for (int64_t c0 = 0, b = 0; c0 < a.k; c0 += a.block_k, ++b) {
    const int64_t c1 = std::min(a.k, c0 + a.block_k);
    // NOTE: two accumulator pairs (four FMA chains) hide the FMA latency at R = 1 (decode).
    V::F p0[R], p1[R], q0[R], q1[R];
    for (int r = 0; r < R; ++r) p0[r] = p1[r] = q0[r] = q1[r] = V::zero();
    int64_t c = c0;
    for (; c + 2 * V::kStep <= c1; c += 2 * V::kStep) {
      fp8_step<R>(w, x, c, p0, p1);
      fp8_step<R>(w, x, c + V::kStep, q0, q1);
    }
    if (c + V::kStep <= c1) {
      fp8_step<R>(w, x, c, p0, p1);
      c += V::kStep;
    }
    const V::F scale = V::set1(s[b] * kF16Shift);
    float rest[R] = {};
    for (; c < c1; ++c) {
      const float wv = fp8_e4m3_to_f32(w[c]);
      for (int r = 0; r < R; ++r) rest[r] += wv * x[r][c];
    }
    for (int r = 0; r < R; ++r) {
      total[r] = V::fma(V::add(V::add(p0[r], p1[r]), V::add(q0[r], q1[r])), scale, total[r]);
      tail[r] += rest[r] * s[b];
    }
  }
  for (int r = 0; r < R; ++r) res[r] = V::hsum(total[r]) + tail[r];
}

// NOTE: 16 weight rows (16 x K bytes: 112 KiB at K = 7168) stay in L2 while every group of up
// to 4 activation rows passes over them, so each weight byte comes from DRAM once per call.
constexpr int64_t kFp8ColumnTile = 16;

template <int R>
inline void fp8_tile(const BlockScaledMatmulArgs& a, int64_t i, int64_t j0, int64_t j1) {
  const float* x[R];
  for (int r = 0; r < R; ++r) x[r] = a.x + (i + r) * a.x_stride;
  float res[R];
  for (int64_t j = j0; j < j1; ++j) {
    fp8_dot<R>(a, j, x, res);
    for (int r = 0; r < R; ++r) a.out[(i + r) * a.out_stride + j] = res[r];
  }
}

// ---- M > 4 (prefill): decode a [16, <= 256] weight tile once into an f32 stack tile, with
// its block scale applied, and run every row of x over it. ----

constexpr int64_t kFp8TileCols = 256;

// dst[c] = dequant(w[c]) for c in [0, len); all len codes share the block scale s.
inline void fp8_dequant_run(const uint8_t* w, int64_t len, float s, float* dst) {
  const V::F sv = V::set1(s * kF16Shift);
  int64_t c = 0;
  for (; c + V::kStep <= len; c += V::kStep) {
    V::F lo, hi;
    V::decode(w + c, &lo, &hi);
    V::store(dst + c, V::mul(lo, sv));
    V::store(dst + c + V::kStep / 2, V::mul(hi, sv));
  }
  for (; c < len; ++c) dst[c] = fp8_e4m3_to_f32(w[c]) * s;
}

// out[i + r, j] += dot(tile row j - j0, x[i + r][c0 .. c0 + len)) for j in [j0, j1).
template <int R>
inline void fp8_tile_pass(const BlockScaledMatmulArgs& a, const float* tile, int64_t i, int64_t j0,
                          int64_t j1, int64_t c0, int64_t len) {
  const float* x[R];
  for (int r = 0; r < R; ++r) x[r] = a.x + (i + r) * a.x_stride + c0;
  for (int64_t j = j0; j < j1; ++j) {
    const float* t = tile + (j - j0) * kFp8TileCols;
    V::F acc0[R], acc1[R];
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = V::zero();
    int64_t c = 0;
    for (; c + V::kStep <= len; c += V::kStep) {
      const V::F w0 = V::load(t + c), w1 = V::load(t + c + V::kStep / 2);
      for (int r = 0; r < R; ++r) {
        acc0[r] = V::fma(w0, V::load(x[r] + c), acc0[r]);
        acc1[r] = V::fma(w1, V::load(x[r] + c + V::kStep / 2), acc1[r]);
      }
    }
    float res[R];
    for (int r = 0; r < R; ++r) res[r] = V::hsum(V::add(acc0[r], acc1[r]));
    for (; c < len; ++c) {
      for (int r = 0; r < R; ++r) res[r] += t[c] * x[r][c];
    }
    for (int r = 0; r < R; ++r) a.out[(i + r) * a.out_stride + j] += res[r];
  }
}

inline void fp8_columns_tiled(const BlockScaledMatmulArgs& a, int64_t n_begin, int64_t n_end) {
  alignas(64) float tile[kFp8ColumnTile * kFp8TileCols];  // 16 KiB: stays in L1
  for (int64_t j0 = n_begin; j0 < n_end; j0 += kFp8ColumnTile) {
    const int64_t j1 = std::min(n_end, j0 + kFp8ColumnTile);
    for (int64_t i = 0; i < a.m; ++i) {
      for (int64_t j = j0; j < j1; ++j) a.out[i * a.out_stride + j] = 0.0f;
    }
    for (int64_t c0 = 0, b = 0; c0 < a.k; c0 += a.block_k, ++b) {
      const int64_t block_end = std::min(a.k, c0 + a.block_k);
      for (int64_t s0 = c0; s0 < block_end; s0 += kFp8TileCols) {
        const int64_t len = std::min(block_end - s0, kFp8TileCols);
        for (int64_t j = j0; j < j1; ++j) {
          const float s = a.scale_inv[(j / a.block_n) * a.scale_stride + b];
          fp8_dequant_run(a.w + j * a.w_stride + s0, len, s, tile + (j - j0) * kFp8TileCols);
        }
        int64_t i = 0;
        for (; i + 4 <= a.m; i += 4) fp8_tile_pass<4>(a, tile, i, j0, j1, s0, len);
        switch (a.m - i) {
          case 3:
            fp8_tile_pass<3>(a, tile, i, j0, j1, s0, len);
            break;
          case 2:
            fp8_tile_pass<2>(a, tile, i, j0, j1, s0, len);
            break;
          case 1:
            fp8_tile_pass<1>(a, tile, i, j0, j1, s0, len);
            break;
          default:
            break;
        }
      }
    }
  }
}

inline void simd_matmul_block_scaled_columns(const BlockScaledMatmulArgs& a, int64_t n_begin,
                                             int64_t n_end) {
  // NOTE: past 4 rows of x, decoding each code once per call (into the stack tile) beats
  // decoding it once per 4 rows in registers; at decode (M <= 4) the tile round trip would
  // only add work to a memory-bound loop.
  if (a.m > 4) return fp8_columns_tiled(a, n_begin, n_end);
  for (int64_t j0 = n_begin; j0 < n_end; j0 += kFp8ColumnTile) {
    const int64_t j1 = std::min(n_end, j0 + kFp8ColumnTile);
    int64_t i = 0;
    for (; i + 4 <= a.m; i += 4) fp8_tile<4>(a, i, j0, j1);
    switch (a.m - i) {
      case 3:
        fp8_tile<3>(a, i, j0, j1);
        break;
      case 2:
        fp8_tile<2>(a, i, j0, j1);
        break;
      case 1:
        fp8_tile<1>(a, i, j0, j1);
        break;
      default:
        break;
    }
  }
}

}  // namespace
}  // namespace tessera::kernels::cpu

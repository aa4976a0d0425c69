// INT8 matmul kernels shared by int8_matmul_avx2.cc and int8_matmul_avx512.cc: include it only
// from a file built with at least -mavx2 -mfma. Quantisation and weight-only use 256-bit
// registers in both builds; the W8A8 dot is AVX2 maddubs (below) or, with TESSERA_INT8_AVX512=1,
// AVX-512 VNNI vpdpbusd on 64 bytes per step.
// NOTE (AVX2): maddubs multiplies unsigned by signed bytes, so the unsigned operand is |w| and
// the signed one sign(w) * q: pairs sum to at most 2 * 128 * 127 = 32512 < 2^15 (no saturation,
// w = -128 included since q never is). (VNNI): vpdpbusd has no 16-bit stage, so q + 128 (an
// unsigned byte) times w is summed in int32 and 128 * sum(w) is subtracted; the int32 lanes may
// wrap, but the true dot fits int32 (K <= kInt8MaxK), so the wrapped difference is exact.
// Invariant: internal linkage only, so the two ISA builds never share a symbol.
#pragma once

#if !defined(__AVX2__) || !defined(__FMA__)
#error "int8_matmul_simd.h needs -mavx2 -mfma"
#endif

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/int8_matmul.h"

namespace tessera::kernels::cpu {
namespace {

inline float hsum256(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

inline float hmax256(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

// ---- per-row activation quantisation (the reference's formula, 8 lanes at a time) ----

inline __m256i quantize8(const float* x, __m256 s) {
  const __m256 v = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x), s),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 c = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
  return _mm256_cvtps_epi32(c);  // already integral: exact
}

inline void simd_quantize_rows(const float* x, int64_t x_stride, int64_t k, int8_t* q,
                               int64_t q_stride, float* scale, int64_t r_begin, int64_t r_end) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  // packs interleave 128-bit lanes; this puts each 4-byte group back in element order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t i = r_begin; i < r_end; ++i) {
    const float* xr = x + i * x_stride;
    int8_t* qr = q + i * q_stride;
    __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= k; c += 16) {
      m0 = _mm256_max_ps(m0, _mm256_and_ps(_mm256_loadu_ps(xr + c), abs_mask));
      m1 = _mm256_max_ps(m1, _mm256_and_ps(_mm256_loadu_ps(xr + c + 8), abs_mask));
    }
    float amax = hmax256(_mm256_max_ps(m0, m1));
    for (; c < k; ++c) amax = std::max(amax, std::fabs(xr[c]));
    const float s = amax / 127.0f;
    scale[i] = s;
    if (s == 0.0f) {
      std::memset(qr, 0, static_cast<size_t>(k));
      continue;
    }
    const __m256 sv = _mm256_set1_ps(s);
    c = 0;
    for (; c + 32 <= k; c += 32) {
      const __m256i p01 = _mm256_packs_epi32(quantize8(xr + c, sv), quantize8(xr + c + 8, sv));
      const __m256i p23 =
          _mm256_packs_epi32(quantize8(xr + c + 16, sv), quantize8(xr + c + 24, sv));
      const __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qr + c), b);
    }
    for (; c < k; ++c) {
      qr[c] = static_cast<int8_t>(std::clamp(std::nearbyint(xr[c] / s), -127.0f, 127.0f));
    }
  }
}

// ---- W8A8 int32 dot products: res[r] = dot(q[r][0..k), w[0..k)) ----

#if TESSERA_INT8_AVX512
template <int R>
inline void w8a8_dot(const int8_t* w, const int8_t* const* q, int64_t k, int32_t* res) {
  const __m512i ones = _mm512_set1_epi8(1);
  const __m512i offset = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
  __m512i wsum = _mm512_setzero_si512();
  for (int64_t c = 0; c < k; c += 64) {
    // NOTE: masked loads fetch nothing past k; masked-off w bytes are 0, so they add nothing.
    const __mmask64 mask = k - c >= 64 ? ~__mmask64{0} : (__mmask64{1} << (k - c)) - 1;
    const __m512i wv = _mm512_maskz_loadu_epi8(mask, w + c);
    wsum = _mm512_dpbusd_epi32(wsum, ones, wv);
    for (int r = 0; r < R; ++r) {
      const __m512i xu = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, q[r] + c), offset);
      acc[r] = _mm512_dpbusd_epi32(acc[r], xu, wv);
    }
  }
  const uint32_t correction = 128u * static_cast<uint32_t>(_mm512_reduce_add_epi32(wsum));
  for (int r = 0; r < R; ++r) {
    res[r] =
        static_cast<int32_t>(static_cast<uint32_t>(_mm512_reduce_add_epi32(acc[r])) - correction);
  }
}
#else
inline int32_t hsum_epi32(__m256i v) {
  __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4e));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xb1));
  return _mm_cvtsi128_si32(x);
}

template <int R>
inline void w8a8_dot(const int8_t* w, const int8_t* const* q, int64_t k, int32_t* res) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
  int64_t c = 0;
  for (; c + 32 <= k; c += 32) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + c));
    const __m256i wa = _mm256_abs_epi8(wv);
    for (int r = 0; r < R; ++r) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[r] + c));
      const __m256i pairs = _mm256_maddubs_epi16(wa, _mm256_sign_epi8(xv, wv));
      acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(pairs, ones));
    }
  }
  for (int r = 0; r < R; ++r) {
    int32_t tail = 0;
    for (int64_t t = c; t < k; ++t) tail += static_cast<int32_t>(q[r][t]) * w[t];
    res[r] = hsum_epi32(acc[r]) + tail;
  }
}
#endif

// NOTE: 16 weight rows (64 KiB at K = 4096) stay in L2 while every group of up to 4 quantised
// rows passes over them, so each weight byte comes from DRAM once per call.
constexpr int64_t kInt8ColumnTile = 16;

template <int R>
inline void w8a8_tile(const Int8MatmulArgs& a, const Int8Activations& xq, int64_t i, int64_t j0,
                      int64_t j1) {
  const int8_t* q[R];
  for (int r = 0; r < R; ++r) q[r] = xq.q + (i + r) * xq.q_stride;
  int32_t res[R];
  for (int64_t j = j0; j < j1; ++j) {
    w8a8_dot<R>(a.w + j * a.w_stride, q, a.k, res);
    for (int r = 0; r < R; ++r) {
      a.out[(i + r) * a.out_stride + j] =
          static_cast<float>(res[r]) * xq.scale[i + r] * a.w_scale[j];
    }
  }
}

// Runs tile<R>(i, j0, j1) over every row group of up to 4 and 16-column tile of [n_begin, n_end).
template <class Tile>
inline void for_each_tile(int64_t m, int64_t n_begin, int64_t n_end, const Tile& tile) {
  for (int64_t j0 = n_begin; j0 < n_end; j0 += kInt8ColumnTile) {
    const int64_t j1 = std::min(n_end, j0 + kInt8ColumnTile);
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) tile.template operator()<4>(i, j0, j1);
    switch (m - i) {
      case 3:
        tile.template operator()<3>(i, j0, j1);
        break;
      case 2:
        tile.template operator()<2>(i, j0, j1);
        break;
      case 1:
        tile.template operator()<1>(i, j0, j1);
        break;
      default:
        break;
    }
  }
}

inline void simd_w8a8_columns(const Int8MatmulArgs& a, const Int8Activations& xq, int64_t n_begin,
                              int64_t n_end) {
  for_each_tile(a.m, n_begin, n_end,
                [&]<int R>(int64_t i, int64_t j0, int64_t j1) { w8a8_tile<R>(a, xq, i, j0, j1); });
}

// ---- weight-only: i8 -> f32 in registers (M <= 4) or through an f32 stack tile (M > 4) ----

inline __m256 widen8(const int8_t* w) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w))));
}

// res[r] = dot(x[r][0..len), t[0..len)) for an f32 row t.
template <int R>
inline void f32_dot(const float* t, const float* const* x, int64_t len, float* res) {
  __m256 acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= len; c += 16) {
    const __m256 w0 = _mm256_loadu_ps(t + c), w1 = _mm256_loadu_ps(t + c + 8);
    for (int r = 0; r < R; ++r) {
      acc0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[r] + c), acc0[r]);
      acc1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[r] + c + 8), acc1[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    res[r] = hsum256(_mm256_add_ps(acc0[r], acc1[r]));
    for (int64_t u = c; u < len; ++u) res[r] += t[u] * x[r][u];
  }
}

template <int R>
inline void wo_tile_registers(const Int8MatmulArgs& a, int64_t i, int64_t j0, int64_t j1) {
  const float* x[R];
  for (int r = 0; r < R; ++r) x[r] = a.x + (i + r) * a.x_stride;
  for (int64_t j = j0; j < j1; ++j) {
    const int8_t* w = a.w + j * a.w_stride;
    __m256 acc0[R], acc1[R];
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= a.k; c += 16) {
      const __m256 w0 = widen8(w + c), w1 = widen8(w + c + 8);
      for (int r = 0; r < R; ++r) {
        acc0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[r] + c), acc0[r]);
        acc1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[r] + c + 8), acc1[r]);
      }
    }
    for (int r = 0; r < R; ++r) {
      float sum = hsum256(_mm256_add_ps(acc0[r], acc1[r]));
      for (int64_t u = c; u < a.k; ++u) sum += static_cast<float>(w[u]) * x[r][u];
      a.out[(i + r) * a.out_stride + j] = sum * a.w_scale[j];
    }
  }
}

constexpr int64_t kInt8TileCols = 256;

inline void wo_columns_tiled(const Int8MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  alignas(64) float tile[kInt8ColumnTile * kInt8TileCols];  // 16 KiB: stays in L1
  for (int64_t j0 = n_begin; j0 < n_end; j0 += kInt8ColumnTile) {
    const int64_t j1 = std::min(n_end, j0 + kInt8ColumnTile);
    for (int64_t i = 0; i < a.m; ++i) {
      for (int64_t j = j0; j < j1; ++j) a.out[i * a.out_stride + j] = 0.0f;
    }
    for (int64_t c0 = 0; c0 < a.k; c0 += kInt8TileCols) {
      const int64_t len = std::min(a.k - c0, kInt8TileCols);
      for (int64_t j = j0; j < j1; ++j) {
        const int8_t* w = a.w + j * a.w_stride + c0;
        float* t = tile + (j - j0) * kInt8TileCols;
        int64_t c = 0;
        for (; c + 8 <= len; c += 8) _mm256_store_ps(t + c, widen8(w + c));
        for (; c < len; ++c) t[c] = static_cast<float>(w[c]);
      }
      for_each_tile(a.m, j0, j1, [&]<int R>(int64_t i, int64_t t0, int64_t t1) {
        const float* x[R];
        for (int r = 0; r < R; ++r) x[r] = a.x + (i + r) * a.x_stride + c0;
        float res[R];
        for (int64_t j = t0; j < t1; ++j) {
          f32_dot<R>(tile + (j - j0) * kInt8TileCols, x, len, res);
          for (int r = 0; r < R; ++r) a.out[(i + r) * a.out_stride + j] += res[r];
        }
      });
    }
    for (int64_t i = 0; i < a.m; ++i) {
      for (int64_t j = j0; j < j1; ++j) a.out[i * a.out_stride + j] *= a.w_scale[j];
    }
  }
}

inline void simd_weight_only_columns(const Int8MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  // NOTE: past 4 rows, widening each weight once per call (into the stack tile) beats widening
  // it once per 4 rows in registers; at decode the tile round trip would only add work.
  if (a.m > 4) return wo_columns_tiled(a, n_begin, n_end);
  for_each_tile(a.m, n_begin, n_end, [&]<int R>(int64_t i, int64_t j0, int64_t j1) {
    wo_tile_registers<R>(a, i, j0, j1);
  });
}

}  // namespace
}  // namespace tessera::kernels::cpu

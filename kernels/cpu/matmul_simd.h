// 256-bit matmul kernels shared by matmul_avx2.cc and matmul_avx512.cc: include it only from a
// file built with at least -mavx2 -mfma -mf16c. With TESSERA_SIMD_VNNI=1 (AVX-512 VNNI + VL)
// the u8 x s8 dot step is one vpdpbusd; otherwise maddubs + madd. Everything here has internal
// linkage, so the two ISA builds never share a symbol.
// Invariant: activation int8 codes are in [-127, 127] (the sign trick for Q8_0 relies on it).
#pragma once

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "matmul_simd.h needs -mavx2 -mfma -mf16c"
#endif

#include <immintrin.h>

#include <cstdint>

#include "kernels/common/types.h"
#include "kernels/cpu/matmul_tiling.h"

namespace tessera::kernels::cpu {
namespace {

// ---- primitives ----

// 8 x i32, each the sum of 4 adjacent u8 * s8 products.
inline __m256i dot_u8s8(__m256i u, __m256i s) {
#if TESSERA_SIMD_VNNI
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

// 8 x i32 sums of u8 * s8 over pairs, each pair-sum times the i16 in `scale` of its lane.
inline __m256i dot_u8s8_scaled(__m256i u, __m256i s, __m256i scale16) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale16);
}

inline float hsum_ps(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

inline int hsum_epi32(__m256i v) {
  __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4e));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xb1));
  return _mm_cvtsi128_si32(x);
}

inline float half(f16_bits h) { return _cvtsh_ss(h); }

inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// 16 bytes of Q4_0/Q4_1 nibbles -> 32 u8 codes in element order (low nibbles are 0..15).
inline __m256i unpack_q4(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

template <class Block>
inline const Block* act_row(const char* a, int64_t stride, int r) {
  return reinterpret_cast<const Block*>(a + r * stride);
}

// ---- Q4_0 / Q4_1 x Q8_1: d_w d_a sum(q_w q_a) + offset_w * s_a, offset = m or -8 d_w ----

template <bool kHasMin>
struct Q4Kernel {
  template <int R>
  static inline void block(const BlockQ4_1* w1, const BlockQ4_0* w0, int64_t b, const char* a,
                           int64_t as, __m256* acc, float* offs) {
    __m256i q;
    float dw, offset;
    if constexpr (kHasMin) {
      q = unpack_q4(w1[b].qs);
      dw = half(w1[b].d);
      offset = half(w1[b].m);
    } else {
      q = unpack_q4(w0[b].qs);
      dw = half(w0[b].d);
      offset = -8.0f * dw;
    }
    for (int r = 0; r < R; ++r) {
      const BlockQ8_1& y = act_row<BlockQ8_1>(a, as, r)[b];
      const __m256 p = _mm256_cvtepi32_ps(dot_u8s8(q, load256(y.qs)));
      acc[r] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * y.d), acc[r]);
      offs[r] += offset * y.s;
    }
  }

  template <int R>
  static void dot(const char* wrow, const char* a, int64_t as, int64_t k, float* res) {
    const BlockQ4_1* w1 = reinterpret_cast<const BlockQ4_1*>(wrow);
    const BlockQ4_0* w0 = reinterpret_cast<const BlockQ4_0*>(wrow);
    __m256 acc0[R], acc1[R];
    float offs0[R], offs1[R];
    for (int r = 0; r < R; ++r) {
      acc0[r] = acc1[r] = _mm256_setzero_ps();
      offs0[r] = offs1[r] = 0.0f;
    }
    const int64_t nb = k / 32;
    int64_t b = 0;
    // NOTE: two independent accumulator sets hide the FMA latency at R = 1 (decode).
    for (; b + 1 < nb; b += 2) {
      block<R>(w1, w0, b, a, as, acc0, offs0);
      block<R>(w1, w0, b + 1, a, as, acc1, offs1);
    }
    if (b < nb) block<R>(w1, w0, b, a, as, acc0, offs0);
    for (int r = 0; r < R; ++r) {
      res[r] = hsum_ps(_mm256_add_ps(acc0[r], acc1[r])) + offs0[r] + offs1[r];
    }
  }
};

// ---- Q8_0 x Q8_0: |w| as u8 against sign(w) * a as s8 ----

struct Q8_0Kernel {
  template <int R>
  static inline void block(const BlockQ8_0* w, int64_t b, const char* a, int64_t as,
                           __m256* acc) {
    const __m256i wq = load256(w[b].qs);
    const __m256i wabs = _mm256_sign_epi8(wq, wq);
    const float dw = half(w[b].d);
    for (int r = 0; r < R; ++r) {
      const BlockQ8_0& y = act_row<BlockQ8_0>(a, as, r)[b];
      const __m256i s = _mm256_sign_epi8(load256(y.qs), wq);
      const __m256 p = _mm256_cvtepi32_ps(dot_u8s8(wabs, s));
      acc[r] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * half(y.d)), acc[r]);
    }
  }

  template <int R>
  static void dot(const char* wrow, const char* a, int64_t as, int64_t k, float* res) {
    const BlockQ8_0* w = reinterpret_cast<const BlockQ8_0*>(wrow);
    __m256 acc0[R], acc1[R];
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
    const int64_t nb = k / 32;
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
      block<R>(w, b, a, as, acc0);
      block<R>(w, b + 1, a, as, acc1);
    }
    if (b < nb) block<R>(w, b, a, as, acc0);
    for (int r = 0; r < R; ++r) res[r] = hsum_ps(_mm256_add_ps(acc0[r], acc1[r]));
  }
};

// ---- Q4_K x Q8_K: d d_a sum_j sc_j dot_j - dmin d_a sum_j m_j (bsum_2j + bsum_2j+1) ----

inline void q4_k_scales(const uint8_t* p, uint8_t* sc, uint8_t* mn) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = p[j] & 63;
    mn[j] = p[j + 4] & 63;
    sc[j + 4] = static_cast<uint8_t>((p[j + 8] & 0x0f) | ((p[j] >> 6) << 4));
    mn[j + 4] = static_cast<uint8_t>((p[j + 8] >> 4) | ((p[j + 4] >> 6) << 4));
  }
}

struct Q4_KKernel {
  template <int R>
  static void dot(const char* wrow, const char* a, int64_t as, int64_t k, float* res) {
    const BlockQ4_K* w = reinterpret_cast<const BlockQ4_K*>(wrow);
    const __m256i mask = _mm256_set1_epi8(0x0f);
    __m256 acc[R];
    float offs[R];
    for (int r = 0; r < R; ++r) {
      acc[r] = _mm256_setzero_ps();
      offs[r] = 0.0f;
    }
    for (int64_t b = 0; b < k / kQK_K; ++b) {
      uint8_t sc[8], mn[8];
      q4_k_scales(w[b].scales, sc, mn);
      const float d = half(w[b].d);
      const float dmin = half(w[b].dmin);
      __m256i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
      for (int g = 0; g < 4; ++g) {
        const __m256i bytes = load256(w[b].qs + 32 * g);
        const __m256i lo = _mm256_and_si256(bytes, mask);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), mask);
        const __m256i s_lo = _mm256_set1_epi16(sc[2 * g]);
        const __m256i s_hi = _mm256_set1_epi16(sc[2 * g + 1]);
        for (int r = 0; r < R; ++r) {
          const BlockQ8_K& y = act_row<BlockQ8_K>(a, as, r)[b];
          isum[r] = _mm256_add_epi32(isum[r], dot_u8s8_scaled(lo, load256(y.qs + 64 * g), s_lo));
          isum[r] = _mm256_add_epi32(isum[r],
                                     dot_u8s8_scaled(hi, load256(y.qs + 64 * g + 32), s_hi));
        }
      }
      for (int r = 0; r < R; ++r) {
        const BlockQ8_K& y = act_row<BlockQ8_K>(a, as, r)[b];
        int msum = 0;
        for (int j = 0; j < 8; ++j) msum += mn[j] * (y.bsums[2 * j] + y.bsums[2 * j + 1]);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_set1_ps(d * y.d), acc[r]);
        offs[r] -= dmin * y.d * static_cast<float>(msum);
      }
    }
    for (int r = 0; r < R; ++r) res[r] = hsum_ps(acc[r]) + offs[r];
  }
};

// ---- Q6_K x Q8_K: d d_a sum_g sc_g (dot_g(q6, a) - 32 bsum_g), q6 unsigned in [0, 63] ----

struct Q6_KKernel {
  template <int R>
  static void dot(const char* wrow, const char* a, int64_t as, int64_t k, float* res) {
    const BlockQ6_K* w = reinterpret_cast<const BlockQ6_K*>(wrow);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m2 = _mm256_set1_epi8(0x03);
    const __m256i m2_2 = _mm256_set1_epi8(0x0c);
    const __m256i m2_4 = _mm256_set1_epi8(0x30);
    float acc[R] = {};
    for (int64_t b = 0; b < k / kQK_K; ++b) {
      const int8_t* sc = w[b].scales;
      __m256i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = load256(w[b].ql + 64 * h);
        const __m256i ql1 = load256(w[b].ql + 64 * h + 32);
        const __m256i qh = load256(w[b].qh + 32 * h);
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                               _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
        q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                               _mm256_slli_epi16(_mm256_and_si256(qh, m2_2), 2));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                               _mm256_and_si256(qh, m2_4));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2_4));
        for (int t = 0; t < 4; ++t) {
          // 32 values = two groups of 16 with their own scales: one per 128-bit lane.
          const __m256i scale = _mm256_set_m128i(_mm_set1_epi16(sc[8 * h + 2 * t + 1]),
                                                 _mm_set1_epi16(sc[8 * h + 2 * t]));
          for (int r = 0; r < R; ++r) {
            const BlockQ8_K& y = act_row<BlockQ8_K>(a, as, r)[b];
            const __m256i s = load256(y.qs + 128 * h + 32 * t);
            isum[r] = _mm256_add_epi32(isum[r], dot_u8s8_scaled(q[t], s, scale));
          }
        }
      }
      const float d = half(w[b].d);
      for (int r = 0; r < R; ++r) {
        const BlockQ8_K& y = act_row<BlockQ8_K>(a, as, r)[b];
        int bias = 0;
        for (int g = 0; g < 16; ++g) bias += sc[g] * y.bsums[g];
        const int total = hsum_epi32(isum[r]) - 32 * bias;
        acc[r] += d * y.d * static_cast<float>(total);
      }
    }
    for (int r = 0; r < R; ++r) res[r] = acc[r];
  }
};

// ---- f32 / f16 / bf16 weights against f32 activations ----

template <ElemType T>
inline __m256 load8_weights(const char* w, int64_t c) {
  if constexpr (T == ElemType::kF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + c);
  } else if constexpr (T == ElemType::kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * c)));
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * c));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

template <ElemType T>
inline float load1_weight(const char* w, int64_t c) {
  if constexpr (T == ElemType::kF32) {
    return reinterpret_cast<const float*>(w)[c];
  } else if constexpr (T == ElemType::kF16) {
    return half(reinterpret_cast<const f16_bits*>(w)[c]);
  } else {
    return bf16_to_f32(reinterpret_cast<const bf16_bits*>(w)[c]);
  }
}

template <ElemType T>
struct FloatKernel {
  template <int R>
  static void dot(const char* wrow, const char* a, int64_t as, int64_t k, float* res) {
    __m256 acc0[R], acc1[R];
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= k; c += 16) {
      const __m256 w0 = load8_weights<T>(wrow, c);
      const __m256 w1 = load8_weights<T>(wrow, c + 8);
      for (int r = 0; r < R; ++r) {
        const float* x = reinterpret_cast<const float*>(a + r * as);
        acc0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + c), acc0[r]);
        acc1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + c + 8), acc1[r]);
      }
    }
    for (; c + 8 <= k; c += 8) {
      const __m256 w0 = load8_weights<T>(wrow, c);
      for (int r = 0; r < R; ++r) {
        const float* x = reinterpret_cast<const float*>(a + r * as);
        acc0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + c), acc0[r]);
      }
    }
    for (int r = 0; r < R; ++r) res[r] = hsum_ps(_mm256_add_ps(acc0[r], acc1[r]));
    for (; c < k; ++c) {
      const float wv = load1_weight<T>(wrow, c);
      for (int r = 0; r < R; ++r) res[r] += wv * reinterpret_cast<const float*>(a + r * as)[c];
    }
  }
};

// ---- activation quantization (round to nearest even, codes in [-127, 127]) ----

inline float abs_max(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  __m128 v = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  v = _mm_max_ps(v, _mm_movehl_ps(v, v));
  v = _mm_max_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}

// 32 floats times `id` -> 32 int8 codes stored to q; sums[0] = codes 0..15, sums[1] = 16..31.
inline void quantize32(const float* x, __m256 id, int8_t* q, int* sums) {
  const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
  const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
  const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
  const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
  sums[0] = hsum_epi32(_mm256_add_epi32(i0, i1));
  sums[1] = hsum_epi32(_mm256_add_epi32(i2, i3));
  // packs interleave 128-bit lanes; the permute restores element order.
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
  const __m256i ordered = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), ordered);
}

inline __m256 inverse_scale(float amax, float* d) {
  *d = amax / 127.0f;
  return _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
}

inline void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t k) {
  for (int64_t b = 0; b < k / 32; ++b) {
    float d;
    const __m256 id = inverse_scale(abs_max(x + 32 * b, 32), &d);
    int sums[2];
    quantize32(x + 32 * b, id, y[b].qs, sums);
    y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
  }
}

inline void quantize_q8_1(const float* x, BlockQ8_1* y, int64_t k) {
  for (int64_t b = 0; b < k / 32; ++b) {
    float d;
    const __m256 id = inverse_scale(abs_max(x + 32 * b, 32), &d);
    int sums[2];
    quantize32(x + 32 * b, id, y[b].qs, sums);
    y[b].d = d;
    y[b].s = d * static_cast<float>(sums[0] + sums[1]);
  }
}

inline void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK_K; ++b) {
    const float* xb = x + kQK_K * b;
    float d;
    const __m256 id = inverse_scale(abs_max(xb, kQK_K), &d);
    y[b].d = d;
    for (int g = 0; g < kQK_K / 32; ++g) {
      int sums[2];
      quantize32(xb + 32 * g, id, y[b].qs + 32 * g, sums);
      y[b].bsums[2 * g] = static_cast<int16_t>(sums[0]);
      y[b].bsums[2 * g + 1] = static_cast<int16_t>(sums[1]);
    }
  }
}

inline void simd_quantize_activations(ElemType act_type, const float* x, int64_t x_stride,
                                      void* dst, int64_t dst_row_bytes, int64_t row_begin,
                                      int64_t row_end, int64_t k) {
  for (int64_t i = row_begin; i < row_end; ++i) {
    const float* xi = x + i * x_stride;
    void* yi = static_cast<char*>(dst) + i * dst_row_bytes;
    switch (act_type) {
      case ElemType::kQ8_0: quantize_q8_0(xi, static_cast<BlockQ8_0*>(yi), k); break;
      case ElemType::kQ8_1: quantize_q8_1(xi, static_cast<BlockQ8_1*>(yi), k); break;
      case ElemType::kQ8_K: quantize_q8_k(xi, static_cast<BlockQ8_K*>(yi), k); break;
      default: return;
    }
  }
}

inline void simd_matmul_columns(ElemType w_type, const void* w, int64_t w_row_bytes,
                                const void* acts, int64_t as, float* out, int64_t out_stride,
                                int64_t m, int64_t n_begin, int64_t n_end, int64_t k) {
  switch (w_type) {
    case ElemType::kQ4_0:
      return run_tiles<Q4Kernel<false>>(w, w_row_bytes, acts, as, out, out_stride, m, n_begin,
                                        n_end, k);
    case ElemType::kQ4_1:
      return run_tiles<Q4Kernel<true>>(w, w_row_bytes, acts, as, out, out_stride, m, n_begin,
                                       n_end, k);
    case ElemType::kQ8_0:
      return run_tiles<Q8_0Kernel>(w, w_row_bytes, acts, as, out, out_stride, m, n_begin, n_end,
                                   k);
    case ElemType::kQ4_K:
      return run_tiles<Q4_KKernel>(w, w_row_bytes, acts, as, out, out_stride, m, n_begin, n_end,
                                   k);
    case ElemType::kQ6_K:
      return run_tiles<Q6_KKernel>(w, w_row_bytes, acts, as, out, out_stride, m, n_begin, n_end,
                                   k);
    case ElemType::kF32:
      return run_tiles<FloatKernel<ElemType::kF32>>(w, w_row_bytes, acts, as, out, out_stride, m,
                                                    n_begin, n_end, k);
    case ElemType::kF16:
      return run_tiles<FloatKernel<ElemType::kF16>>(w, w_row_bytes, acts, as, out, out_stride, m,
                                                    n_begin, n_end, k);
    case ElemType::kBF16:
      return run_tiles<FloatKernel<ElemType::kBF16>>(w, w_row_bytes, acts, as, out, out_stride, m,
                                                     n_begin, n_end, k);
    default:
      return;
  }
}

}  // namespace
}  // namespace tessera::kernels::cpu

// AVX2 + FMA + F16C vector traits (8 floats) for the generic op kernels in ops_simd.h.
// Include only from files named *_avx2.cc or *_avx512.cc (built with those instructions).
// Invariant: exp() is accurate to a few ulp on [-87.3, 88.3], returns +inf above, 0 below and
// NaN for NaN, so softmax and silu keep their NaN/Inf positions.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace tessera::kernels::cpu {
namespace {  // NOTE: internal linkage: each ISA's instantiations stay in their own object file.

struct VecAvx2 {
  using Reg = __m256;
  static constexpr int kWidth = 8;

  static __m256i tail_mask(int count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }

  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float v) { return _mm256_set1_ps(v); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg load_partial(const float* p, int n) { return _mm256_maskload_ps(p, tail_mask(n)); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static void store_partial(float* p, Reg v, int n) { _mm256_maskstore_ps(p, tail_mask(n), v); }
  static Reg load_f16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static Reg load_f16_partial(const uint16_t* p, int n) {
    uint16_t tmp[8] = {};
    std::memcpy(tmp, p, static_cast<size_t>(n) * 2);
    return load_f16(tmp);
  }
  static void store_f16(uint16_t* p, Reg v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  static void store_f16_partial(uint16_t* p, Reg v, int n) {
    uint16_t tmp[8];
    store_f16(tmp, v);
    std::memcpy(p, tmp, static_cast<size_t>(n) * 2);
  }
  // Round to nearest even in integer arithmetic (bitwise equal to kernels::f32_to_bf16,
  // subnormals included); NaN keeps its sign and top payload bits and is made quiet.
  static __m128i to_bf16(Reg v) {
    const __m256i x = _mm256_castps_si256(v);
    const __m256i abs = _mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff));
    const __m256i is_nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f800000));
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    const __m256i rounded =
        _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
    const __m256i r = _mm256_blendv_epi8(rounded, quiet, is_nan);
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    return _mm256_castsi256_si128(packed);
  }
  static void store_bf16(uint16_t* p, Reg v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), to_bf16(v));
  }
  static void store_bf16_partial(uint16_t* p, Reg v, int n) {
    uint16_t tmp[8];
    store_bf16(tmp, v);
    std::memcpy(p, tmp, static_cast<size_t>(n) * 2);
  }

  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm256_div_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }

  // e^x = 2^n * e^r with n = round(x / ln2), |r| <= ln2 / 2, e^r by its Taylor series to r^7
  // (truncation error < 1e-8 relative).
  static Reg exp(Reg x) {
    const Reg hi = _mm256_set1_ps(88.3762626647949f);  // 127.5 * ln2: n stays <= 127
    const Reg lo = _mm256_set1_ps(-87.3365447505531f);  // -126 * ln2: n stays >= -126
    // NOTE: min/max return their second operand when one is NaN, so NaN passes through.
    const Reg xc = _mm256_max_ps(lo, _mm256_min_ps(hi, x));
    const Reg n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    Reg r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    Reg p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    Reg y = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    y = _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    return y;
  }

  static float reduce_add(Reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float reduce_max(Reg v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace
}  // namespace tessera::kernels::cpu

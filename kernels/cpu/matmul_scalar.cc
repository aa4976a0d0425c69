// Scalar matmul kernels (no intrinsics): the fallback for CPUs without AVX2 and the plain
// statement of what the SIMD files compute — integer dot products of quantized blocks with
// f32 accumulation across blocks, and the offset terms taken from Q8_1's s / Q8_K's bsums.
#include "kernels/cpu/matmul_isa.h"
#include "kernels/cpu/matmul_tiling.h"
#include "kernels/ref/quantize.h"

#include <type_traits>

namespace tessera::kernels::cpu::scalar {
namespace {

template <class Block>
const Block* act_row(const char* a, int64_t stride, int r) {
  return reinterpret_cast<const Block*>(a + r * stride);
}

// Q4_0 (offset -8) and Q4_1 (offset m) against Q8_1: d_w d_a sum(q w_q a) + offset * s_a.
template <bool kHasMin>
struct Q4Kernel {
  using W = typename std::conditional<kHasMin, BlockQ4_1, BlockQ4_0>::type;
  template <int R>
  static void dot(const char* wrow, const char* a, int64_t as, int64_t k, float* res) {
    const W* w = reinterpret_cast<const W*>(wrow);
    float acc[R] = {};
    for (int64_t b = 0; b < k / 32; ++b) {
      const float dw = f16_to_f32(w[b].d);
      float offset;
      if constexpr (kHasMin) offset = f16_to_f32(w[b].m);
      else offset = -8.0f * dw;
      for (int r = 0; r < R; ++r) {
        const BlockQ8_1& y = act_row<BlockQ8_1>(a, as, r)[b];
        int sum = 0;
        for (int j = 0; j < 16; ++j) {
          sum += (w[b].qs[j] & 0x0f) * y.qs[j] + (w[b].qs[j] >> 4) * y.qs[j + 16];
        }
        acc[r] += dw * y.d * static_cast<float>(sum) + offset * y.s;
      }
    }
    for (int r = 0; r < R; ++r) res[r] = acc[r];
  }
};

struct Q8_0Kernel {
  template <int R>
  static void dot(const char* wrow, const char* a, int64_t as, int64_t k, float* res) {
    const BlockQ8_0* w = reinterpret_cast<const BlockQ8_0*>(wrow);
    float acc[R] = {};
    for (int64_t b = 0; b < k / 32; ++b) {
      const float dw = f16_to_f32(w[b].d);
      for (int r = 0; r < R; ++r) {
        const BlockQ8_0& y = act_row<BlockQ8_0>(a, as, r)[b];
        int sum = 0;
        for (int j = 0; j < 32; ++j) sum += w[b].qs[j] * y.qs[j];
        acc[r] += dw * f16_to_f32(y.d) * static_cast<float>(sum);
      }
    }
    for (int r = 0; r < R; ++r) res[r] = acc[r];
  }
};

void q4_k_scales(const uint8_t* p, int* sc, int* mn) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = p[j] & 63;
    mn[j] = p[j + 4] & 63;
    sc[j + 4] = (p[j + 8] & 0x0f) | ((p[j] >> 6) << 4);
    mn[j + 4] = (p[j + 8] >> 4) | ((p[j + 4] >> 6) << 4);
  }
}

struct Q4_KKernel {
  template <int R>
  static void dot(const char* wrow, const char* a, int64_t as, int64_t k, float* res) {
    const BlockQ4_K* w = reinterpret_cast<const BlockQ4_K*>(wrow);
    float acc[R] = {};
    for (int64_t b = 0; b < k / kQK_K; ++b) {
      int sc[8], mn[8];
      q4_k_scales(w[b].scales, sc, mn);
      const float d = f16_to_f32(w[b].d);
      const float dmin = f16_to_f32(w[b].dmin);
      for (int r = 0; r < R; ++r) {
        const BlockQ8_K& y = act_row<BlockQ8_K>(a, as, r)[b];
        int sum = 0, msum = 0;
        for (int g = 0; g < 4; ++g) {
          int lo = 0, hi = 0;
          for (int l = 0; l < 32; ++l) {
            lo += (w[b].qs[32 * g + l] & 0x0f) * y.qs[64 * g + l];
            hi += (w[b].qs[32 * g + l] >> 4) * y.qs[64 * g + 32 + l];
          }
          sum += sc[2 * g] * lo + sc[2 * g + 1] * hi;
        }
        for (int j = 0; j < 8; ++j) msum += mn[j] * (y.bsums[2 * j] + y.bsums[2 * j + 1]);
        acc[r] += y.d * (d * static_cast<float>(sum) - dmin * static_cast<float>(msum));
      }
    }
    for (int r = 0; r < R; ++r) res[r] = acc[r];
  }
};

struct Q6_KKernel {
  template <int R>
  static void dot(const char* wrow, const char* a, int64_t as, int64_t k, float* res) {
    const BlockQ6_K* w = reinterpret_cast<const BlockQ6_K*>(wrow);
    float acc[R] = {};
    for (int64_t b = 0; b < k / kQK_K; ++b) {
      int8_t q[kQK_K];  // unsigned 6-bit codes, 0..63
      for (int half = 0; half < 2; ++half) {
        const uint8_t* ql = w[b].ql + 64 * half;
        const uint8_t* qh = w[b].qh + 32 * half;
        int8_t* qq = q + 128 * half;
        for (int l = 0; l < 32; ++l) {
          qq[l] = static_cast<int8_t>((ql[l] & 0x0f) | ((qh[l] & 3) << 4));
          qq[l + 32] = static_cast<int8_t>((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4));
          qq[l + 64] = static_cast<int8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
          qq[l + 96] = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
        }
      }
      const float d = f16_to_f32(w[b].d);
      for (int r = 0; r < R; ++r) {
        const BlockQ8_K& y = act_row<BlockQ8_K>(a, as, r)[b];
        int sum = 0;
        for (int g = 0; g < 16; ++g) {
          int s = 0;
          for (int l = 0; l < 16; ++l) s += q[16 * g + l] * y.qs[16 * g + l];
          sum += w[b].scales[g] * (s - 32 * y.bsums[g]);
        }
        acc[r] += d * y.d * static_cast<float>(sum);
      }
    }
    for (int r = 0; r < R; ++r) res[r] = acc[r];
  }
};

template <ElemType T>
float load_weight(const char* w, int64_t c) {
  if constexpr (T == ElemType::kF32) return reinterpret_cast<const float*>(w)[c];
  if constexpr (T == ElemType::kF16) return f16_to_f32(reinterpret_cast<const f16_bits*>(w)[c]);
  if constexpr (T == ElemType::kBF16) return bf16_to_f32(reinterpret_cast<const bf16_bits*>(w)[c]);
  return 0.0f;
}

template <ElemType T>
struct FloatKernel {
  template <int R>
  static void dot(const char* wrow, const char* a, int64_t as, int64_t k, float* res) {
    float acc[R] = {};
    for (int64_t c = 0; c < k; ++c) {
      const float wv = load_weight<T>(wrow, c);
      for (int r = 0; r < R; ++r) acc[r] += wv * reinterpret_cast<const float*>(a + r * as)[c];
    }
    for (int r = 0; r < R; ++r) res[r] = acc[r];
  }
};

}  // namespace

void quantize_activations(ElemType act_type, const float* x, int64_t x_stride, void* dst,
                          int64_t dst_row_bytes, int64_t row_begin, int64_t row_end, int64_t k) {
  for (int64_t i = row_begin; i < row_end; ++i) {
    ref::quantize_row(act_type, x + i * x_stride, static_cast<char*>(dst) + i * dst_row_bytes, k);
  }
}

void matmul_columns(ElemType w_type, const void* w, int64_t w_row_bytes, const void* acts,
                    int64_t act_stride_bytes, float* out, int64_t out_stride, int64_t m,
                    int64_t n_begin, int64_t n_end, int64_t k) {
  const int64_t as = act_stride_bytes;
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

}  // namespace tessera::kernels::cpu::scalar

// Dispatch of the INT8 matmul to its ISA files, and the scalar (baseline x86-64) kernels: the
// reference's quantisation formula, int32 dots, f32 weight-only sums scaled once per column.
#include "kernels/cpu/int8_matmul.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/int8_matmul_isa.h"

namespace tessera::kernels::cpu {
namespace scalar {

void quantize_rows_int8(const float* x, int64_t x_stride, int64_t k, int8_t* q, int64_t q_stride,
                        float* scale, int64_t r_begin, int64_t r_end) {
  for (int64_t i = r_begin; i < r_end; ++i) {
    const float* xr = x + i * x_stride;
    int8_t* qr = q + i * q_stride;
    float amax = 0.0f;
    for (int64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(xr[c]));
    const float s = amax / 127.0f;
    scale[i] = s;
    for (int64_t c = 0; c < k; ++c) {
      const float v = s == 0.0f ? 0.0f : std::nearbyint(xr[c] / s);
      qr[c] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
  }
}

void matmul_int8_w8a8_columns(const Int8MatmulArgs& a, const Int8Activations& xq, int64_t n_begin,
                              int64_t n_end) {
  for (int64_t i = 0; i < a.m; ++i) {
    const int8_t* q = xq.q + i * xq.q_stride;
    for (int64_t j = n_begin; j < n_end; ++j) {
      const int8_t* w = a.w + j * a.w_stride;
      int32_t dot = 0;
      for (int64_t c = 0; c < a.k; ++c) dot += static_cast<int32_t>(q[c]) * w[c];
      a.out[i * a.out_stride + j] = static_cast<float>(dot) * xq.scale[i] * a.w_scale[j];
    }
  }
}

void matmul_int8_weight_only_columns(const Int8MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  for (int64_t i = 0; i < a.m; ++i) {
    const float* x = a.x + i * a.x_stride;
    for (int64_t j = n_begin; j < n_end; ++j) {
      const int8_t* w = a.w + j * a.w_stride;
      float sum = 0.0f;
      for (int64_t c = 0; c < a.k; ++c) sum += x[c] * static_cast<float>(w[c]);
      a.out[i * a.out_stride + j] = sum * a.w_scale[j];
    }
  }
}

}  // namespace scalar

namespace {
Isa usable(Isa isa) { return isa_supported(isa) ? isa : best_supported_isa(); }
}  // namespace

void quantize_rows_int8(Isa isa, const float* x, int64_t x_stride, int64_t k, int8_t* q,
                        int64_t q_stride, float* scale, int64_t r_begin, int64_t r_end) {
  switch (usable(isa)) {
    case Isa::kAvx512:
      return avx512::quantize_rows_int8(x, x_stride, k, q, q_stride, scale, r_begin, r_end);
    case Isa::kAvx2:
      return avx2::quantize_rows_int8(x, x_stride, k, q, q_stride, scale, r_begin, r_end);
    case Isa::kScalar:
      return scalar::quantize_rows_int8(x, x_stride, k, q, q_stride, scale, r_begin, r_end);
  }
}

void matmul_int8_w8a8_columns(Isa isa, const Int8MatmulArgs& a, const Int8Activations& xq,
                              int64_t n_begin, int64_t n_end) {
  switch (usable(isa)) {
    case Isa::kAvx512:
      return avx512::matmul_int8_w8a8_columns(a, xq, n_begin, n_end);
    case Isa::kAvx2:
      return avx2::matmul_int8_w8a8_columns(a, xq, n_begin, n_end);
    case Isa::kScalar:
      return scalar::matmul_int8_w8a8_columns(a, xq, n_begin, n_end);
  }
}

void matmul_int8_weight_only_columns(Isa isa, const Int8MatmulArgs& a, int64_t n_begin,
                                     int64_t n_end) {
  switch (usable(isa)) {
    case Isa::kAvx512:
      return avx512::matmul_int8_weight_only_columns(a, n_begin, n_end);
    case Isa::kAvx2:
      return avx2::matmul_int8_weight_only_columns(a, n_begin, n_end);
    case Isa::kScalar:
      return scalar::matmul_int8_weight_only_columns(a, n_begin, n_end);
  }
}

}  // namespace tessera::kernels::cpu

// Reference INT8 matmul: the obviously-correct loops of int8_matmul.h, one row at a time.
#include "kernels/ref/int8_matmul.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace tessera::kernels::ref {

float quantize_row_int8(const float* x, int64_t k, int8_t* q) {
  float amax = 0.0f;
  for (int64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(x[c]));
  const float s = amax / 127.0f;
  for (int64_t c = 0; c < k; ++c) {
    // NOTE: a division, not a multiply by 127 / amax: it is what the contract writes, and
    // IEEE division is correctly rounded on every backend (no reciprocal approximation).
    // s == 0 also covers a row so tiny that amax / 127 underflows.
    const float v = s == 0.0f ? 0.0f : std::nearbyint(x[c] / s);
    q[c] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
  }
  return s;
}

void matmul_int8_w8a8(const Int8MatmulArgs& a) {
  std::vector<int8_t> q(static_cast<size_t>(a.k));
  for (int64_t i = 0; i < a.m; ++i) {
    const float s = quantize_row_int8(a.x + i * a.x_stride, a.k, q.data());
    for (int64_t j = 0; j < a.n; ++j) {
      const int8_t* w = a.w + j * a.w_stride;
      int32_t dot = 0;
      for (int64_t c = 0; c < a.k; ++c) dot += static_cast<int32_t>(q[c]) * w[c];
      a.out[i * a.out_stride + j] = static_cast<float>(dot) * s * a.w_scale[j];
    }
  }
}

void matmul_int8_weight_only(const Int8MatmulArgs& a) {
  for (int64_t i = 0; i < a.m; ++i) {
    const float* x = a.x + i * a.x_stride;
    for (int64_t j = 0; j < a.n; ++j) {
      const int8_t* w = a.w + j * a.w_stride;
      double sum = 0.0;
      for (int64_t c = 0; c < a.k; ++c) sum += static_cast<double>(x[c]) * w[c];
      a.out[i * a.out_stride + j] = static_cast<float>(sum * a.w_scale[j]);
    }
  }
}

}  // namespace tessera::kernels::ref

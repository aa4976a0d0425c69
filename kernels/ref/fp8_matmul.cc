// Reference block-scaled FP8 matmul: the obviously-correct triple loop of fp8_matmul.h.
#include "kernels/ref/fp8_matmul.h"

#include "kernels/common/types.h"

namespace tessera::kernels::ref {

void matmul_block_scaled(const BlockScaledMatmulArgs& a) {
  for (int64_t i = 0; i < a.m; ++i) {
    const float* x = a.x + i * a.x_stride;
    for (int64_t j = 0; j < a.n; ++j) {
      const uint8_t* w = a.w + j * a.w_stride;
      const float* s = a.scale_inv + (j / a.block_n) * a.scale_stride;
      double sum = 0.0;
      for (int64_t c = 0; c < a.k; ++c) {
        const double wv = static_cast<double>(fp8_e4m3_to_f32(w[c])) * s[c / a.block_k];
        sum += static_cast<double>(x[c]) * wv;
      }
      a.out[i * a.out_stride + j] = static_cast<float>(sum);
    }
  }
}

}  // namespace tessera::kernels::ref

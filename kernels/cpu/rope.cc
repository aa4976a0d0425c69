// CPU rotary embedding: cos/sin per token from a (cached) inv_freq table, angles in double;
// NeoX rotation dispatched to SIMD, interleaved pairs in plain C++. Baseline: no intrinsics.
// Invariant: cos/sin carry the attention factor, so rotation is one multiply-add per value.
#include <cmath>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/ops_isa.h"
#include "kernels/cpu/ops_simd.h"
#include "kernels/cpu/ops_vec_scalar.h"

namespace tessera::kernels::cpu {
namespace scalar {
TESSERA_DEFINE_ROPE_OPS(VecScalar)
}  // namespace scalar

void rope_cos_sin(const double* inv_freq, int half, int32_t position, double attention_factor,
                  float* cos, float* sin) {
  for (int i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position) * inv_freq[i];
    cos[i] = static_cast<float>(std::cos(angle) * attention_factor);
    sin[i] = static_cast<float>(std::sin(angle) * attention_factor);
  }
}

void rope_apply(float* x, int64_t num_heads, int64_t head_stride, const float* cos,
                const float* sin, int half, RopeSpec::Style style) {
  if (style == RopeSpec::Style::kInterleaved) {
    for (int64_t h = 0; h < num_heads; ++h) {
      float* head = x + h * head_stride;
      for (int i = 0; i < half; ++i) {
        const float x0 = head[2 * i];
        const float x1 = head[2 * i + 1];
        head[2 * i] = x0 * cos[i] - x1 * sin[i];
        head[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
      }
    }
    return;
  }
  const Isa isa = ops_isa();
  for (int64_t h = 0; h < num_heads; ++h) {
    float* head = x + h * head_stride;
    switch (isa) {
      case Isa::kAvx512: avx512::rope_neox(head, cos, sin, half); break;
      case Isa::kAvx2: avx2::rope_neox(head, cos, sin, half); break;
      case Isa::kScalar: scalar::rope_neox(head, cos, sin, half); break;
    }
  }
}

}  // namespace tessera::kernels::cpu

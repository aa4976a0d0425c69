// Dispatch of the block-scaled FP8 matmul to its ISA files, and the scalar (baseline x86-64)
// kernel: a 256-entry decode table, f32 sums per block, one scale multiply per block.
#include "kernels/cpu/fp8_matmul.h"

#include <algorithm>
#include <array>

#include "kernels/common/types.h"
#include "kernels/cpu/fp8_matmul_isa.h"

namespace tessera::kernels::cpu {
namespace scalar {
namespace {

const std::array<float, 256>& e4m3_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[v] = fp8_e4m3_to_f32(static_cast<uint8_t>(v));
    return t;
  }();
  return table;
}

}  // namespace

void matmul_block_scaled_columns(const BlockScaledMatmulArgs& a, int64_t n_begin, int64_t n_end) {
  const std::array<float, 256>& lut = e4m3_table();
  for (int64_t i = 0; i < a.m; ++i) {
    const float* x = a.x + i * a.x_stride;
    for (int64_t j = n_begin; j < n_end; ++j) {
      const uint8_t* w = a.w + j * a.w_stride;
      const float* s = a.scale_inv + (j / a.block_n) * a.scale_stride;
      float total = 0.0f;
      for (int64_t c0 = 0, b = 0; c0 < a.k; c0 += a.block_k, ++b) {
        const int64_t c1 = std::min(a.k, c0 + a.block_k);
        float sum = 0.0f;
        for (int64_t c = c0; c < c1; ++c) sum += lut[w[c]] * x[c];
        total += sum * s[b];
      }
      a.out[i * a.out_stride + j] = total;
    }
  }
}

}  // namespace scalar

void matmul_block_scaled_columns(Isa isa, const BlockScaledMatmulArgs& a, int64_t n_begin,
                                 int64_t n_end) {
  if (!isa_supported(isa)) isa = best_supported_isa();
  switch (isa) {
    case Isa::kAvx512:
      avx512::matmul_block_scaled_columns(a, n_begin, n_end);
      return;
    case Isa::kAvx2:
      avx2::matmul_block_scaled_columns(a, n_begin, n_end);
      return;
    case Isa::kScalar:
      scalar::matmul_block_scaled_columns(a, n_begin, n_end);
      return;
  }
}

}  // namespace tessera::kernels::cpu

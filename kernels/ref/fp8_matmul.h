// Reference block-scaled FP8 matmul (DeepSeek-V3 checkpoint format): e4m3 weights with one f32
// scale per block_n x block_k block, dequantised value by value, products summed in double.
// The oracle for the CPU/CUDA kernels; never optimise it.
// Invariant: dequant(w)[n, k] = fp8_e4m3_to_f32(w[n, k]) * scale_inv[n / block_n, k / block_k],
// the orientation of transformers' FP8Linear and DeepSeek's weight_dequant.
#pragma once

#include <cstdint>

namespace tessera::kernels {

// Raw-pointer description of one block-scaled matmul: out[i, j] = sum_k x[i, k] * dequant(w)[j, k].
struct BlockScaledMatmulArgs {
  const float* x = nullptr;  // [m, k], row stride x_stride (elements)
  int64_t x_stride = 0;
  const uint8_t* w = nullptr;  // e4m3 [n, k], row stride w_stride (bytes)
  int64_t w_stride = 0;
  const float* scale_inv = nullptr;  // [ceil(n / block_n), ceil(k / block_k)], row stride
  int64_t scale_stride = 0;          //   scale_stride (elements)
  float* out = nullptr;              // [m, n], row stride out_stride (elements)
  int64_t out_stride = 0;
  int64_t m = 0, n = 0, k = 0;
  int64_t block_n = 128, block_k = 128;
};

namespace ref {

// All m x n outputs of `a`.
void matmul_block_scaled(const BlockScaledMatmulArgs& a);

}  // namespace ref
}  // namespace tessera::kernels

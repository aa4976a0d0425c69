// Reference INT8 matmul (docs/ops.md "INT8 matmul"): W8A8 with per-token activation
// quantisation and exact int32 dot products, and weight-only INT8 summed in double. The oracle
// of the CPU and CUDA kernels; never optimise it.
// Invariant: W8A8 quantisation is q = clamp(rint(x / s), -127, 127) with s = max|x_m| / 127
// (both f32 divisions, round half to even); out = (f32(dot) * s_m) * w_scale[n] in f32, in that
// order, so every backend that quantises the same way is bit-identical to this one.
#pragma once

#include <cstdint>

namespace tessera::kernels {

// Raw-pointer description of one INT8 matmul: out[i, j] from x[i, :] and w[j, :].
struct Int8MatmulArgs {
  const float* x = nullptr;  // [m, k], row stride x_stride (elements)
  int64_t x_stride = 0;
  const int8_t* w = nullptr;  // [n, k], row stride w_stride (bytes)
  int64_t w_stride = 0;
  const float* w_scale = nullptr;  // [n], per output channel
  float* out = nullptr;            // [m, n], row stride out_stride (elements)
  int64_t out_stride = 0;
  int64_t m = 0, n = 0, k = 0;
};

// Largest K for which a W8A8 int32 dot product cannot overflow: 127 * 128 * K < 2^31.
inline constexpr int64_t kInt8MaxK = 131072;

namespace ref {

// Quantises one activation row x [k] to q [k]; returns its scale s = max|x| / 127 (0 for an
// all-zero row, whose q are all 0). x must be finite.
float quantize_row_int8(const float* x, int64_t k, int8_t* q);

// out = (f32(sum_k q[i, k] * w[j, k]) * s_i) * w_scale[j]; q, s from quantize_row_int8.
void matmul_int8_w8a8(const Int8MatmulArgs& a);

// out = (sum_k x[i, k] * f32(w[j, k])) * w_scale[j], summed in double, rounded once to f32.
void matmul_int8_weight_only(const Int8MatmulArgs& a);

}  // namespace ref
}  // namespace tessera::kernels

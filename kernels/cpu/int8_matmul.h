// CPU INT8 matmul on raw pointers (docs/ops.md "INT8 matmul"), dispatched to an AVX-512 VNNI /
// AVX2 / scalar implementation. W8A8: activations are quantised per row once per call
// (quantize_rows_int8), then int32 dot products against the i8 weights; weight-only: weights
// widened to f32 in registers (or a stack tile when M > 4), FMA with x, scaled once per column.
// Invariant: W8A8 outputs are bit-identical to kernels/ref/int8_matmul.h on every ISA (same
// quantisation formula, exact int32 dots, same final multiply order).
#pragma once

#include <cstdint>

#include "kernels/cpu/cpu_features.h"
#include "kernels/ref/int8_matmul.h"

namespace tessera::kernels::cpu {

// Quantised activations of one W8A8 call.
struct Int8Activations {
  const int8_t* q = nullptr;  // [m, k], row stride q_stride (bytes)
  int64_t q_stride = 0;
  const float* scale = nullptr;  // [m], s_i = max|x_i| / 127
};

// Row stride (bytes) quantize_rows_int8 callers should give q: k rounded up to 64.
inline int64_t int8_q_stride(int64_t k) { return (k + 63) / 64 * 64; }

// q[i, :] and scale[i] for rows i in [r_begin, r_end) of x [m, k] (x_stride in elements).
// Bytes of q past k in each row are left untouched.
void quantize_rows_int8(Isa isa, const float* x, int64_t x_stride, int64_t k, int8_t* q,
                        int64_t q_stride, float* scale, int64_t r_begin, int64_t r_end);

// W8A8: out[i, j] = (f32(dot(q_i, w_j)) * scale_i) * w_scale[j] for every row i in [0, a.m)
// and column j in [n_begin, n_end). a.x is not read.
void matmul_int8_w8a8_columns(Isa isa, const Int8MatmulArgs& a, const Int8Activations& xq,
                              int64_t n_begin, int64_t n_end);

// Weight-only: out[i, j] = dot(x_i, f32(w_j)) * w_scale[j] for columns j in [n_begin, n_end).
void matmul_int8_weight_only_columns(Isa isa, const Int8MatmulArgs& a, int64_t n_begin,
                                     int64_t n_end);

}  // namespace tessera::kernels::cpu

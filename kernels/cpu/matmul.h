// CPU matmul kernels on raw pointers: out = x @ w^T for every weight type, dispatched to an
// AVX-512 / AVX2 / scalar implementation chosen by the caller (see cpu_features.h). The caller
// quantizes activations once (quantize_activations) and then splits output columns across
// threads (matmul_columns); the backend's CpuMatmul does both.
// Invariant: k is a whole number of weight blocks; activation rows are written and read with
// activation_row_bytes(w_type, k) bytes between them.
#pragma once

#include <cstdint>

#include "kernels/common/types.h"
#include "kernels/cpu/cpu_features.h"

namespace tessera::kernels::cpu {

// Weight types with a CPU kernel: f32, f16, bf16, q4_0, q4_1, q8_0, q4_k, q6_k.
bool matmul_supported(ElemType w_type);

// The activation format paired with a weight type: kQ8_1 for Q4_0/Q4_1 (its s carries the
// offset term), kQ8_0 for Q8_0, kQ8_K for Q4_K/Q6_K, kF32 (x used as is) for float weights.
ElemType activation_type(ElemType w_type);

// Bytes of one quantized activation row of k values (0 for float weights: no scratch needed).
int64_t activation_row_bytes(ElemType w_type, int64_t k);

// Quantizes rows [row_begin, row_end) of x into dst, row i at dst + i * activation_row_bytes.
//   x    f32 [m, k], row stride x_stride (elements)
// No-op for float weight types.
void quantize_activations(Isa isa, ElemType w_type, const float* x, int64_t x_stride, void* dst,
                          int64_t row_begin, int64_t row_end, int64_t k);

// out[i * out_stride + j] = dot(act row i, weight row j) for i in [0, m), j in [n_begin, n_end).
//   w     [n, k] of w_type, row j at (const char*)w + j * w_row_bytes
//   acts  quantized activations from quantize_activations (act_stride_bytes =
//         activation_row_bytes), or for float weights x itself (act_stride_bytes = 4 * x_stride)
//   out   f32 [m, n], row stride out_stride (elements); only the named columns are written
void matmul_columns(Isa isa, ElemType w_type, const void* w, int64_t w_row_bytes,
                    const void* acts, int64_t act_stride_bytes, float* out, int64_t out_stride,
                    int64_t m, int64_t n_begin, int64_t n_end, int64_t k);

}  // namespace tessera::kernels::cpu

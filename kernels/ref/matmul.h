// Reference matmul: weights dequantized row by row to f32, dot products accumulated in double.
// The oracle for every CPU/CUDA matmul path; never optimise it.
#pragma once

#include <cstdint>

#include "kernels/common/types.h"

namespace tessera::kernels::ref {

// out[i * out_stride + j] = sum_k x[i * x_stride + k] * dequant(w_j)[k]
//   x    f32 [m, k] with row stride x_stride (elements)
//   w    [n, k] of w_type; row j starts at (const char*)w + j * w_row_bytes
//   out  f32 [m, n] with row stride out_stride (elements)
// Returns false if w_type cannot be dequantized or k is not a whole number of its blocks.
bool matmul(ElemType w_type, const void* w, int64_t w_row_bytes, const float* x, int64_t x_stride,
            float* out, int64_t out_stride, int64_t m, int64_t n, int64_t k);

// Strides of one operand of matmul_batched: batch b, row i starts at b * batch + i * row
// (elements for x and out, bytes for w).
struct BatchStrides {
  int64_t batch = 0;
  int64_t row = 0;
};

// out[b] = x[b] @ dequant(w[b])^T for b < batch, each product exactly as matmul above.
//   x    f32 [batch, m, k] with strides xs (elements)
//   w    [batch, n, k] of w_type with strides ws (bytes)
//   out  f32 [batch, m, n] with strides os (elements)
// Returns false as matmul does.
bool matmul_batched(ElemType w_type, const void* w, BatchStrides ws, const float* x,
                    BatchStrides xs, float* out, BatchStrides os, int64_t batch, int64_t m,
                    int64_t n, int64_t k);

}  // namespace tessera::kernels::ref

// Reference matmul: each weight row dequantized to f32 by ref::dequantize_row, then plain
// dot products accumulated in double. Slow on purpose; it is the spec.
#include "kernels/ref/matmul.h"

#include <vector>

#include "kernels/ref/quant.h"

namespace tessera::kernels::ref {

bool matmul(ElemType w_type, const void* w, int64_t w_row_bytes, const float* x, int64_t x_stride,
            float* out, int64_t out_stride, int64_t m, int64_t n, int64_t k) {
  const ElemTraits t = elem_traits(w_type);
  if (!t.known || t.block_elems <= 0 || k % t.block_elems != 0) return false;
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t j = 0; j < n; ++j) {
    const char* wj = static_cast<const char*>(w) + j * w_row_bytes;
    if (!dequantize_row(w_type, wj, row.data(), k)) return false;
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * x_stride;
      double acc = 0.0;
      for (int64_t c = 0; c < k; ++c) acc += static_cast<double>(xi[c]) * row[c];
      out[i * out_stride + j] = static_cast<float>(acc);
    }
  }
  return true;
}

bool matmul_batched(ElemType w_type, const void* w, BatchStrides ws, const float* x,
                    BatchStrides xs, float* out, BatchStrides os, int64_t batch, int64_t m,
                    int64_t n, int64_t k) {
  for (int64_t b = 0; b < batch; ++b) {
    const void* wb = static_cast<const char*>(w) + b * ws.batch;
    if (!matmul(w_type, wb, ws.row, x + b * xs.batch, xs.row, out + b * os.batch, os.row, m, n,
                k)) {
      return false;
    }
  }
  return true;
}

}  // namespace tessera::kernels::ref

// Whether the rows of a strided view sit at one uniform pitch (so a single cudaMemcpy2D moves
// them): plain C++ over shapes and byte strides, shared by src/backend/cuda/cuda_memory.cc and
// its host test (tests/unit/moe_cuda_logic_test.cc).
// Invariant: true only if row r starts at r * pitch bytes for every r and pitch >= row_bytes.
#pragma once

#include <cstdint>

namespace tessera::kernels::cuda {

// outer dims: shape[0..outer_ndim) (outermost first) with byte strides stride[]; rows of
// row_bytes. Dims of size 1 are ignored; a single row has pitch row_bytes.
inline bool uniform_row_pitch(int outer_ndim, const int64_t* shape, const int64_t* stride,
                              int64_t row_bytes, int64_t* pitch) {
  int64_t p = row_bytes, span = 1;  // p: pitch of the innermost non-unit dim; span: its rows
  bool have = false;
  for (int d = outer_ndim - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    if (!have) {
      p = stride[d];
      have = true;
    } else if (stride[d] != span * p) {
      return false;
    }
    span *= shape[d];
  }
  *pitch = p;
  return p >= row_bytes;  // cudaMemcpy2D needs pitch >= width
}

}  // namespace tessera::kernels::cuda

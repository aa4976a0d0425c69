// Host-visible vocabulary of the CUDA kernels: a "rows" layout for tensors whose innermost dim
// is contiguous and whose outer dims (up to three) have any strides, in elements.
// Invariant: plain C++ (no device code) so src/backend/cuda/*.cc compile with the host compiler.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/types.h"

namespace tessera::kernels::cuda {

// Rows of a 1..4-dim tensor: row r (row-major over the outer dims) starts at
// sum_d ((r / prod(shape[d+1..])) % shape[d]) * stride[d] elements from the base pointer.
struct RowLayout {
  int outer_ndim = 0;                // 0..3
  int64_t shape[3] = {1, 1, 1};      // outer dims, outermost first
  int64_t stride[3] = {0, 0, 0};     // in elements
  int64_t num_rows = 1;
  int64_t row_elems = 0;             // innermost dim (contiguous)
};

}  // namespace tessera::kernels::cuda

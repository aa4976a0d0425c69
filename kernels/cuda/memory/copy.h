// CUDA strided row copy: rows of bytes between two views with up to three strided outer dims
// (any dtype, block-quantised ones included: a row is dtype_row_bytes of its last dim).
// Invariant: RowLayouts here count BYTES (stride and row_elems), not elements; src and dst
// have the same number of rows and row bytes and must not overlap.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/common/layout.h"

namespace tessera::kernels::cuda {

cudaError_t copy_rows(const void* src, const RowLayout& src_rows, void* dst,
                      const RowLayout& dst_rows, cudaStream_t stream);

}  // namespace tessera::kernels::cuda

// CUDA RMSNorm, plain and fused with the residual add that precedes it in every block.
// Invariant: statistics accumulate in f32 over the whole row; one thread block per row.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/common/layout.h"

namespace tessera::kernels::cuda {

// out = x / sqrt(mean(x^2) + eps) * weight.   x, out f32 rows [num_rows, D]; weight f32 [D].
// out may equal x.
cudaError_t rms_norm(const float* x, const RowLayout& x_rows, const float* weight, float eps,
                     float* out, const RowLayout& out_rows, cudaStream_t stream);

// residual += x; out = rms_norm(residual).   x, residual, out f32 rows [num_rows, D].
cudaError_t rms_norm_residual(const float* x, const RowLayout& x_rows, float* residual,
                              const RowLayout& residual_rows, const float* weight, float eps,
                              float* out, const RowLayout& out_rows, cudaStream_t stream);

}  // namespace tessera::kernels::cuda

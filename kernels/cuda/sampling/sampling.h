// CUDA token sampling (Backend::sample): one thread block per row, no sort of the vocab.
// Greedy rows are a block argmax; other rows find the top-k, top-p and draw positions by radix
// selection over order keys (sampling_math.h) and match kernels/ref/sampling.cc exactly, except
// where u lies within rounding (~1e-15) of a CDF boundary (sums run in another order).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/sampling/sampling_math.h"

namespace tessera::kernels::cuda {

// logits  f32 [num_rows, vocab], row r at logits + r * row_stride (elements)   device memory
// specs   [num_rows]                                                           device memory
// out_ids i32 [num_rows]                                                       device memory
cudaError_t sample_rows(const float* logits, int64_t num_rows, int64_t row_stride, int64_t vocab,
                        const sampling::SampleRowSpec* specs, int32_t* out_ids,
                        cudaStream_t stream);

}  // namespace tessera::kernels::cuda

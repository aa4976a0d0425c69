// CUDA rotary embedding in place on x [T, H, D]. The caller supplies the scaled inverse
// frequencies (kernels::ref::rope_inv_freq computes linear / llama3 / YaRN tables on the host).
// Invariant: angles and sin/cos are computed in double, as the reference does, so long
// positions keep f32 accuracy.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::kernels::cuda {

// x f32 [num_tokens, num_heads, head_dim] with strides (tok_stride, head_stride) elements;
// positions i32 [num_tokens] (device); inv_freq f64 [rot_dim / 2] (device).
// neox: rotate (i, i + rot_dim/2); interleaved: rotate (2i, 2i + 1). cos/sin are multiplied by
// attention_factor (YaRN mscale, else 1).
cudaError_t rope(float* x, int64_t num_tokens, int64_t num_heads, int64_t tok_stride,
                 int64_t head_stride, const int32_t* positions, const double* inv_freq,
                 int rot_dim, bool neox, double attention_factor, cudaStream_t stream);

}  // namespace tessera::kernels::cuda

// CUDA rope (see rope.h): one block per token, threads over (head, pair).
#include "kernels/cuda/rope/rope.h"

#include "kernels/cuda/common/device_utils.cuh"

namespace tessera::kernels::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void rope_kernel(float* x, int64_t num_heads, int64_t tok_stride, int64_t head_stride,
                            const int32_t* positions, const double* inv_freq, int half, bool neox,
                            double attention_factor) {
  const int64_t t = blockIdx.x;
  const double pos = positions[t];
  float* base = x + t * tok_stride;
  for (int64_t p = threadIdx.x; p < num_heads * half; p += blockDim.x) {
    const int64_t h = p / half;
    const int i = static_cast<int>(p % half);
    double s, c;
    sincos(pos * inv_freq[i], &s, &c);
    c *= attention_factor;
    s *= attention_factor;
    float* head = base + h * head_stride;
    float* a = neox ? head + i : head + 2 * i;
    float* b = neox ? head + i + half : head + 2 * i + 1;
    const double x0 = *a;
    const double x1 = *b;
    *a = static_cast<float>(x0 * c - x1 * s);
    *b = static_cast<float>(x0 * s + x1 * c);
  }
}

}  // namespace

cudaError_t rope(float* x, int64_t num_tokens, int64_t num_heads, int64_t tok_stride,
                 int64_t head_stride, const int32_t* positions, const double* inv_freq,
                 int rot_dim, bool neox, double attention_factor, cudaStream_t stream) {
  if (num_tokens == 0 || rot_dim == 0) return cudaSuccess;
  rope_kernel<<<static_cast<unsigned>(num_tokens), kThreads, 0, stream>>>(
      x, num_heads, tok_stride, head_stride, positions, inv_freq, rot_dim / 2, neox,
      attention_factor);
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda

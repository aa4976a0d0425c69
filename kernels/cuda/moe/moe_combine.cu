// CUDA MoE combine: out[t, :] = sum_j weights[t, j] * x[t, j, :], one thread per output value.
// Invariant: products and sums are rounded separately (__fmul_rn / __fadd_rn, no FMA) in j
// order from 0, which is kernels/ref/memory.cc's loop, so outputs match it bit for bit.
#include "kernels/cuda/common/device_utils.cuh"
#include "kernels/cuda/moe/moe.h"

namespace tessera::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void combine_kernel(const float* x, int64_t x_tok, int64_t x_slot, const float* weights,
                               int64_t w_tok, float* out, int64_t out_tok, int64_t top_k,
                               int64_t n) {
  const int64_t t = blockIdx.x;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if (c >= n) return;
  const float* xt = x + t * x_tok + c;
  const float* wt = weights + t * w_tok;
  float acc = 0.0f;
  for (int64_t j = 0; j < top_k; ++j) acc = __fadd_rn(acc, __fmul_rn(wt[j], xt[j * x_slot]));
  out[t * out_tok + c] = acc;
}

}  // namespace

cudaError_t moe_combine(const float* x, int64_t x_tok, int64_t x_slot, const float* weights,
                        int64_t w_tok, float* out, int64_t out_tok, int64_t num_tokens,
                        int64_t top_k, int64_t n, cudaStream_t stream) {
  if (num_tokens == 0 || n == 0) return cudaSuccess;
  if (div_up(n, kThreads) > 65535) return cudaErrorNotSupported;  // grid.y
  const dim3 grid(static_cast<unsigned>(num_tokens), static_cast<unsigned>(div_up(n, kThreads)));
  combine_kernel<<<grid, kThreads, 0, stream>>>(x, x_tok, x_slot, weights, w_tok, out, out_tok,
                                                top_k, n);
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda

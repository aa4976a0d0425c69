// CUDA RMSNorm (see rms_norm.h): one block per row, two passes over the row (sum of squares,
// then scale); the fused variant writes the residual sum in the first pass.
#include "kernels/cuda/norm/rms_norm.h"

#include "kernels/cuda/common/device_utils.cuh"

namespace tessera::kernels::cuda {
namespace {

constexpr int kThreads = 256;

template <bool kResidual>
__global__ void rms_norm_kernel(const float* x, RowLayout x_rows, float* residual,
                                RowLayout residual_rows, const float* weight, float eps,
                                float* out, RowLayout out_rows) {
  __shared__ float partial[32];
  const int64_t r = blockIdx.x;
  const float* xr = x + row_offset(x_rows, r);
  float* rr = kResidual ? residual + row_offset(residual_rows, r) : nullptr;
  float* orow = out + row_offset(out_rows, r);
  const int64_t n = x_rows.row_elems;
  float sum_sq = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float v = xr[i];
    if constexpr (kResidual) {
      v += rr[i];
      rr[i] = v;
    }
    sum_sq = fmaf(v, v, sum_sq);
  }
  sum_sq = block_sum(sum_sq, partial);
  const float inv_rms = rsqrtf(sum_sq / static_cast<float>(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float v = kResidual ? rr[i] : xr[i];
    orow[i] = v * inv_rms * weight[i];
  }
}

}  // namespace

cudaError_t rms_norm(const float* x, const RowLayout& x_rows, const float* weight, float eps,
                     float* out, const RowLayout& out_rows, cudaStream_t stream) {
  if (x_rows.num_rows == 0) return cudaSuccess;
  rms_norm_kernel<false><<<static_cast<unsigned>(x_rows.num_rows), kThreads, 0, stream>>>(
      x, x_rows, nullptr, x_rows, weight, eps, out, out_rows);
  return cudaGetLastError();
}

cudaError_t rms_norm_residual(const float* x, const RowLayout& x_rows, float* residual,
                              const RowLayout& residual_rows, const float* weight, float eps,
                              float* out, const RowLayout& out_rows, cudaStream_t stream) {
  if (x_rows.num_rows == 0) return cudaSuccess;
  rms_norm_kernel<true><<<static_cast<unsigned>(x_rows.num_rows), kThreads, 0, stream>>>(
      x, x_rows, residual, residual_rows, weight, eps, out, out_rows);
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda

// Block-scaled FP8 e4m3 GEMM (see gemm.h), a tiled CUDA-core kernel: 64x64 output tile per
// CTA, each 128-wide K group accumulated in f32 registers, then scaled by x_scale[m, g] *
// w_scale[n / 128, g] and added to the running f32 sum (per-group promotion).
// NOTE: this is the correctness baseline, not the tensor-core path: no wgmma / mma.sync yet,
// so it runs at CUDA-core speed (see docs/cuda.md for the plan and bench for the gap).
#include <cuda_fp8.h>

#include "kernels/cuda/gemm/gemm.h"

namespace tessera::kernels::cuda {
namespace {

constexpr int kTile = 64;
constexpr int kGroup = 128;
constexpr int kKStep = 32;
constexpr int kThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each

__device__ __forceinline__ float fp8_to_f32(uint8_t v) {
  __nv_fp8_e4m3 f;
  f.__x = v;
  return static_cast<float>(f);
}

__global__ void __launch_bounds__(kThreads)
    fp8_block_kernel(const uint8_t* x, int64_t ldx, const float* x_scale, const uint8_t* w,
                     int64_t ldw, const float* w_scale, float* out, int64_t ldo, int64_t M,
                     int64_t N, int64_t K) {
  __shared__ float xs[kKStep][kTile + 1];
  __shared__ float ws[kKStep][kTile + 1];
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t groups = K / kGroup;
  float total[4][4] = {};
  for (int64_t g = 0; g < groups; ++g) {
    float part[4][4] = {};
    for (int kk = 0; kk < kGroup; kk += kKStep) {
      const int64_t k0 = g * kGroup + kk;
      for (int i = threadIdx.x; i < kTile * kKStep; i += kThreads) {
        const int r = i / kKStep, c = i % kKStep;
        xs[c][r] = m0 + r < M ? fp8_to_f32(x[(m0 + r) * ldx + k0 + c]) : 0.0f;
        ws[c][r] = n0 + r < N ? fp8_to_f32(w[(n0 + r) * ldw + k0 + c]) : 0.0f;
      }
      __syncthreads();
#pragma unroll 8
      for (int c = 0; c < kKStep; ++c) {
        float a[4], b[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          a[i] = xs[c][ty * 4 + i];
          b[i] = ws[c][tx * 4 + i];
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
          for (int j = 0; j < 4; ++j) part[i][j] = fmaf(a[i], b[j], part[i][j]);
        }
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t m = m0 + ty * 4 + i;
      const float sx = m < M ? x_scale[m * groups + g] : 0.0f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t n = n0 + tx * 4 + j;
        const float sw = n < N ? w_scale[(n / kGroup) * groups + g] : 0.0f;
        total[i][j] = fmaf(part[i][j], sx * sw, total[i][j]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + ty * 4 + i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tx * 4 + j;
      if (n < N) out[m * ldo + n] = total[i][j];
    }
  }
}

}  // namespace

cudaError_t gemm_fp8_block_scaled(const uint8_t* x, int64_t ldx, const float* x_scale,
                                  const uint8_t* w, int64_t ldw, const float* w_scale, float* out,
                                  int64_t ldo, int64_t M, int64_t N, int64_t K,
                                  cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  if (K % kGroup != 0) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>((N + kTile - 1) / kTile),
                  static_cast<unsigned>((M + kTile - 1) / kTile));
  fp8_block_kernel<<<grid, kThreads, 0, stream>>>(x, ldx, x_scale, w, ldw, w_scale, out, ldo, M,
                                                  N, K);
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda

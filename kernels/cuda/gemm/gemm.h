// CUDA GEMMs: dense bf16/f16/f32 and FP8 e4m3 through cuBLASLt, and a custom FP8 e4m3 GEMM
// with DeepSeek-style block scales (activations 1x128 per row, weights 128x128).
// Invariant: every GEMM computes out[M, N] = x[M, K] @ w[N, K]^T in row-major terms with f32
// accumulation and an f32 output; leading dimensions are row strides in elements.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/types.h"

namespace tessera::kernels::cuda {

// An opaque cuBLASLt handle plus a device workspace (so callers need no cuBLAS header).
struct LtContext;
cudaError_t lt_create(LtContext** ctx, int64_t workspace_bytes);
void lt_destroy(LtContext* ctx);

// out f32 [M, N] (row stride ldo) = x [M, K] (ldx) @ w [N, K]^T (ldw); x and w share `type`:
// f32 (no TF32), f16 or bf16. Returns cudaErrorNotSupported when cuBLASLt has no algorithm.
cudaError_t lt_gemm(LtContext* ctx, ElemType type, const void* x, int64_t ldx, const void* w,
                    int64_t ldw, float* out, int64_t ldo, int64_t M, int64_t N, int64_t K,
                    cudaStream_t stream);

// cuBLASLt FP8 baseline: out f32 = (x_scale * x_e4m3) @ (w_scale * w_e4m3)^T with one scalar
// scale per operand (device pointers to f32). K must be a multiple of 16. sm_89+ only.
cudaError_t lt_gemm_fp8(LtContext* ctx, const uint8_t* x, int64_t ldx, const float* x_scale,
                        const uint8_t* w, int64_t ldw, const float* w_scale, float* out,
                        int64_t ldo, int64_t M, int64_t N, int64_t K, cudaStream_t stream);

// Block-scaled FP8 GEMM (custom kernel):
//   x        e4m3 [M, K]   row stride ldx bytes-as-elements
//   x_scale  f32 [M, K / 128]          one scale per row per 128-wide K group
//   w        e4m3 [N, K]   row stride ldw
//   w_scale  f32 [ceil(N / 128), K / 128]   one scale per 128x128 weight block
//   out      f32 [M, N]    row stride ldo
// K must be a multiple of 128. Partial sums of each 128-wide K group are promoted to f32 and
// scaled before accumulation. NOTE: CUDA-core tiled baseline for now (every arch); the
// tensor-core (wgmma / mma.sync) version is not written yet.
cudaError_t gemm_fp8_block_scaled(const uint8_t* x, int64_t ldx, const float* x_scale,
                                  const uint8_t* w, int64_t ldw, const float* w_scale, float* out,
                                  int64_t ldo, int64_t M, int64_t N, int64_t K,
                                  cudaStream_t stream);

}  // namespace tessera::kernels::cuda

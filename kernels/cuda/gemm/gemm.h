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

// Strided-batched lt_gemm: for b < batch, out + b * out_batch (f32 [M, N], ldo) =
// (x + b * x_batch) [M, K] (ldx) @ (w + b * w_batch) [N, K]^T (ldw); strides in elements, batch
// entries may interleave (a head's rows inside a token row) but no two outputs overlap.
// One cuBLASLt call; like lt_gemm it allocates nothing (the context's workspace) and never
// synchronises, so it can be captured in a CUDA graph. cudaErrorNotSupported when cuBLASLt has
// no strided-batch algorithm for the layout (the caller may loop lt_gemm instead).
cudaError_t lt_gemm_batched(LtContext* ctx, ElemType type, const void* x, int64_t ldx,
                            int64_t x_batch, const void* w, int64_t ldw, int64_t w_batch,
                            float* out, int64_t ldo, int64_t out_batch, int64_t batch, int64_t M,
                            int64_t N, int64_t K, cudaStream_t stream);

// cuBLASLt FP8 baseline: out f32 = (x_scale * x_e4m3) @ (w_scale * w_e4m3)^T with one scalar
// scale per operand (device pointers to f32). K must be a multiple of 16. sm_89+ only.
cudaError_t lt_gemm_fp8(LtContext* ctx, const uint8_t* x, int64_t ldx, const float* x_scale,
                        const uint8_t* w, int64_t ldw, const float* w_scale, float* out,
                        int64_t ldo, int64_t M, int64_t N, int64_t K, cudaStream_t stream);

// Block-scaled FP8 GEMM (DeepSeek-V3 scheme; the algorithm's host/device pieces live in
// gemm/fp8_block_logic.h). Operands (device pointers, strides in elements):
//   xq       e4m3 [M, Kp]  row stride ldxq; Kp = ceil(K / 128) * 128, zero past K, rows 16 B
//                          aligned (as quantize_fp8_rows writes them)
//   x_scale  f32 [M, KB]   row stride ld_xs; KB = ceil(K / 128), one scale per 128-wide group
//   w        e4m3 [N, K]   row stride ldw (any alignment; 16 B rows take the cp.async path)
//   w_scale  f32 [ceil(N / 128), KB]  row stride ld_ws, one scale per 128x128 weight block
//   out      f32 [M, N]    row stride ldo
// out[m, n] = sum_kb x_scale[m, kb] * w_scale[n / 128, kb] * sum_{k in kb} xq[m, k] * w[n, k]:
// each group's partial sum is an f32 register tile promoted (scaled) into the accumulator.
struct Fp8BlockGemm {
  const uint8_t* xq;
  int64_t ldxq;
  // Optional residual codes (layout of xq; M <= 16 only, else ignored): x ~ s (xq + xq_lo).
  const uint8_t* xq_lo;
  const float* x_scale;
  int64_t ld_xs;
  const uint8_t* w;
  int64_t ldw;
  const float* w_scale;
  int64_t ld_ws;
  float* out;
  int64_t ldo;
  int64_t M, N, K;
};

// Activation quantisation: for each row m and group kb, s = amax / 448 (1 when the group is all
// zero), xq[m, k] = e4m3(x[m, k] / s) for k < K and 0 up to Kp; x_scale[m, kb] = s. When
// xq_lo is not null it receives the residual codes (fp8::act_code_lo), same layout as xq.
//   x f32 [M, K] row stride ldx; xq and x_scale as in Fp8BlockGemm.
cudaError_t quantize_fp8_rows(const float* x, int64_t ldx, int64_t M, int64_t K, uint8_t* xq,
                              uint8_t* xq_lo, int64_t ldxq, float* x_scale, int64_t ld_xs,
                              cudaStream_t stream);

// kAuto: the wgmma kernel when TESSERA_FP8_WGMMA=1 is set, the device is sm_90 with sm_90a code
// loaded and the shape fits (M >= 64, K % 128 == 0, 16-byte aligned xq / w rows), else mma.sync
// (sm_89+), else CUDA cores. kTensorCore: mma.sync only. kWgmma: the sm_90a wgmma kernel only
// (cudaErrorNotSupported without it, cudaErrorInvalidValue when the shape does not fit).
enum class Fp8GemmPath { kAuto, kTensorCore, kCudaCore, kWgmma };

// Bytes of f32 workspace the split-K path needs for this problem on `num_sms` SMs (0: none).
int64_t gemm_fp8_block_workspace_bytes(int64_t M, int64_t N, int64_t K, int num_sms);

// Runs the GEMM on `path` (above); kTensorCore on a binary without sm_89+ code returns
// cudaErrorNotSupported. `workspace` holds gemm_fp8_block_workspace_bytes (may be null when
// that is 0; the split-K path is then skipped).
cudaError_t gemm_fp8_block_scaled(const Fp8BlockGemm& g, Fp8GemmPath path, int num_sms,
                                  void* workspace, cudaStream_t stream);

// Any weight block shape, f32 activations (no quantisation; CUDA cores, one warp per output):
// out[m, n] = sum_k x[m, k] * e4m3(w[n, k]) * w_scale[n / block_n, k / block_k]. The backend's
// path for blocks other than 128x128 (small checkpoints, tests); not a serving kernel.
//   x f32 [M, K] (ldx), w e4m3 [N, K] (ldw), w_scale f32 [ceil(N/bn), ceil(K/bk)] (ld_ws)
cudaError_t gemm_fp8_dequant_any_block(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw,
                                       const float* w_scale, int64_t ld_ws, int64_t block_n,
                                       int64_t block_k, float* out, int64_t ldo, int64_t M,
                                       int64_t N, int64_t K, cudaStream_t stream);

}  // namespace tessera::kernels::cuda

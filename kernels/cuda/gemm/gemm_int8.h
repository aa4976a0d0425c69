// CUDA INT8 matmul (docs/ops.md "INT8 matmul"): per-token activation quantisation, the W8A8
// GEMM on mma.sync m16n8k32 s8 tensor cores (sm_80+), and a weight-only INT8 GEMM (mma.sync
// m16n8k16 bf16 with x split hi + lo, sm_80+; CUDA-core fallback). Index and quantisation math
// lives in int8_math.h and int8_wo_logic.h (host-tested).
// Invariant: out[M, N] = x[M, K] @ w[N, K]^T in row-major terms; leading dimensions are row
// strides in elements (bytes for int8); W8A8 outputs equal kernels/ref/int8_matmul.h bitwise.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/gemm/int8_math.h"
#include "kernels/cuda/gemm/int8_wo_logic.h"

namespace tessera::kernels::cuda {

// q [M, ldq] i8 and x_scale [M] f32 from x f32 [M, K] (row stride ldx): q[m, k] =
// quantize_value(x[m, k], s_m) for k < K and 0 for K <= k < ldq. ldq >= int8::q_ldq(K).
cudaError_t quantize_rows_int8(const float* x, int64_t ldx, int64_t M, int64_t K, int8_t* q,
                               int64_t ldq, float* x_scale, cudaStream_t stream);

// out f32 [M, N] (ldo) = (f32(q @ w^T) * x_scale[m]) * w_scale[n].
//   q  i8 [M, ldq] from quantize_rows_int8 (ldq a multiple of 64, zero padded past K, 16-byte
//      aligned base);  w  i8 [N, K], row stride ldw bytes (any; 16-byte aligned rows with
//      K % 16 == 0 take the cp.async path, others a byte-wise loader).
// K <= 131072 (int32 dots). Needs sm_80+; elsewhere returns cudaErrorNotSupported.
// workspace: int32 [M, N], used (and zeroed here) when int8::w8a8_splits(M, N, K, num_sms) > 1
// (small M: K is split over more CTAs); may be null, which disables the split.
cudaError_t gemm_w8a8(const int8_t* q, int64_t ldq, const float* x_scale, const int8_t* w,
                      int64_t ldw, const float* w_scale, float* out, int64_t ldo, int64_t M,
                      int64_t N, int64_t K, int num_sms, int32_t* workspace, cudaStream_t stream);

// Weight-only: out f32 [M, N] (ldo) = (x [M, K] (ldx) @ f32(w)[N, K]^T) * w_scale[n], f32 sums.
// Tensor cores (int8_wo_logic.h) when wo::mma_eligible (sm_80+, x and w bases 16-byte aligned,
// ldx % 4 == 0, ldw % 16 == 0, K % 16 == 0): x = bf16 hi + bf16 lo, i8 weights exact in bf16,
// f32 accumulators; otherwise a CUDA-core f32 kernel. workspace: f32
// [wo::workspace_floats(M, N, K, num_sms)] for split-K partials (small M); may be null, which
// disables the split.
cudaError_t gemm_int8_weight_only(const float* x, int64_t ldx, const int8_t* w, int64_t ldw,
                                  const float* w_scale, float* out, int64_t ldo, int64_t M,
                                  int64_t N, int64_t K, int num_sms, float* workspace,
                                  cudaStream_t stream);
// The CUDA-core kernel alone (any strides, any sm): what gemm_int8_weight_only falls back to;
// exposed for bench/cuda_int8_bench.cu.
cudaError_t gemm_int8_weight_only_cuda_core(const float* x, int64_t ldx, const int8_t* w,
                                            int64_t ldw, const float* w_scale, float* out,
                                            int64_t ldo, int64_t M, int64_t N, int64_t K,
                                            cudaStream_t stream);

}  // namespace tessera::kernels::cuda

// cuBLASLt GEMMs (see gemm.h): row-major out = x @ w^T mapped onto column-major cuBLASLt as
// out^T [N, M] = w [N, K] (transposed) * x^T [K, M]. Heuristic picks the algorithm per call.
// NOTE: descriptors are built per call; a plan cache keyed by (type, M, N, K) is future work.
#include <cublasLt.h>

#include "kernels/cuda/gemm/gemm.h"

namespace tessera::kernels::cuda {

struct LtContext {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

namespace {

cudaError_t to_cuda(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return cudaSuccess;
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return cudaErrorNotSupported;
    case CUBLAS_STATUS_ALLOC_FAILED:
      return cudaErrorMemoryAllocation;
    case CUBLAS_STATUS_INVALID_VALUE:
      return cudaErrorInvalidValue;
    default:
      return cudaErrorUnknown;
  }
}

#define LT_TRY(expr)                                 \
  do {                                               \
    const cublasStatus_t lt_status_ = (expr);        \
    if (lt_status_ != CUBLAS_STATUS_SUCCESS) {       \
      err = to_cuda(lt_status_);                     \
      goto cleanup;                                  \
    }                                                \
  } while (0)

cudaError_t run(LtContext* ctx, cudaDataType_t ab_type, const void* x, int64_t ldx,
                const void* w, int64_t ldw, float* out, int64_t ldo, int64_t M, int64_t N,
                int64_t K, const float* a_scale, const float* b_scale, cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  cudaError_t err = cudaSuccess;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const float alpha = 1.0f, beta = 0.0f;
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  LT_TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a,
                                        sizeof(trans_a)));
  LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b,
                                        sizeof(trans_b)));
  if (a_scale != nullptr) {
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a_scale,
                                          sizeof(a_scale)));
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b_scale,
                                          sizeof(b_scale)));
  }
  // Column-major: A = w as K x N (ld ldw), B = x as K x M (ld ldx), C = out as N x M (ld ldo).
  LT_TRY(cublasLtMatrixLayoutCreate(&a, ab_type, K, N, ldw));
  LT_TRY(cublasLtMatrixLayoutCreate(&b, ab_type, K, M, ldx));
  LT_TRY(cublasLtMatrixLayoutCreate(&c, CUDA_R_32F, N, M, ldo));
  LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
  LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                              &ctx->workspace_bytes,
                                              sizeof(ctx->workspace_bytes)));
  LT_TRY(cublasLtMatmulAlgoGetHeuristic(ctx->handle, op, a, b, c, c, pref, 1, &heuristic,
                                        &found));
  if (found == 0) {
    err = cudaErrorNotSupported;
    goto cleanup;
  }
  LT_TRY(cublasLtMatmul(ctx->handle, op, &alpha, w, a, x, b, &beta, out, c, out, c,
                        &heuristic.algo, ctx->workspace, ctx->workspace_bytes, stream));
cleanup:
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (c) cublasLtMatrixLayoutDestroy(c);
  if (b) cublasLtMatrixLayoutDestroy(b);
  if (a) cublasLtMatrixLayoutDestroy(a);
  if (op) cublasLtMatmulDescDestroy(op);
  return err;
}

}  // namespace

cudaError_t lt_create(LtContext** out, int64_t workspace_bytes) {
  auto* ctx = new LtContext;
  ctx->workspace_bytes = static_cast<size_t>(workspace_bytes);
  cudaError_t err = to_cuda(cublasLtCreate(&ctx->handle));
  if (err == cudaSuccess && workspace_bytes > 0) err = cudaMalloc(&ctx->workspace, workspace_bytes);
  if (err != cudaSuccess) {
    lt_destroy(ctx);
    return err;
  }
  *out = ctx;
  return cudaSuccess;
}

void lt_destroy(LtContext* ctx) {
  if (ctx == nullptr) return;
  if (ctx->workspace) cudaFree(ctx->workspace);
  if (ctx->handle) cublasLtDestroy(ctx->handle);
  delete ctx;
}

cudaError_t lt_gemm(LtContext* ctx, ElemType type, const void* x, int64_t ldx, const void* w,
                    int64_t ldw, float* out, int64_t ldo, int64_t M, int64_t N, int64_t K,
                    cudaStream_t stream) {
  cudaDataType_t t;
  switch (type) {
    case ElemType::kF32: t = CUDA_R_32F; break;
    case ElemType::kF16: t = CUDA_R_16F; break;
    case ElemType::kBF16: t = CUDA_R_16BF; break;
    default: return cudaErrorInvalidValue;
  }
  return run(ctx, t, x, ldx, w, ldw, out, ldo, M, N, K, nullptr, nullptr, stream);
}

cudaError_t lt_gemm_fp8(LtContext* ctx, const uint8_t* x, int64_t ldx, const float* x_scale,
                        const uint8_t* w, int64_t ldw, const float* w_scale, float* out,
                        int64_t ldo, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  // NOTE: cuBLASLt FP8 wants the "TN" layout, which is exactly ours (A transposed).
  return run(ctx, CUDA_R_8F_E4M3, x, ldx, w, ldw, out, ldo, M, N, K, w_scale, x_scale, stream);
}

}  // namespace tessera::kernels::cuda

// cuBLASLt GEMMs (see gemm.h): row-major out = x @ w^T mapped onto column-major cuBLASLt as
// out^T [N, M] = w [N, K] (transposed) * x^T [K, M]; batched GEMMs are cuBLASLt's strided
// batches. Heuristic picks the algorithm per call.
// NOTE: descriptors are built per call; a plan cache keyed by (type, M, N, K) is future work.
#include <cublasLt.h>

#include <algorithm>
#include <cstdint>

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

// Strided batches of one GEMM (batch = 1: a single GEMM); strides in elements.
struct Batching {
  int64_t count = 1;
  int64_t x = 0, w = 0, out = 0;
};

// The alignment (bytes, a power of two, at most cuBLASLt's default 256) every batch's matrix
// has: that of its base pointer and of the batch stride.
uint32_t alignment_of(const void* p, int64_t batch_stride_bytes) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p) | 256u;
  if (batch_stride_bytes != 0) bits |= static_cast<uint64_t>(batch_stride_bytes);
  return static_cast<uint32_t>(bits & (~bits + 1));
}

cudaError_t set_batch(cublasLtMatrixLayout_t layout, int64_t count, int64_t stride) {
  if (count == 1) return cudaSuccess;
  const int32_t count32 = static_cast<int32_t>(count);
  cudaError_t err = to_cuda(cublasLtMatrixLayoutSetAttribute(
      layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count32, sizeof(count32)));
  if (err != cudaSuccess) return err;
  return to_cuda(cublasLtMatrixLayoutSetAttribute(
      layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
}

cudaError_t run(LtContext* ctx, cudaDataType_t ab_type, int64_t ab_bytes, const void* x,
                int64_t ldx, const void* w, int64_t ldw, float* out, int64_t ldo, int64_t M,
                int64_t N, int64_t K, const float* a_scale, const float* b_scale,
                const Batching& batching, cudaStream_t stream) {
  if (M == 0 || N == 0 || batching.count == 0) return cudaSuccess;
  cudaError_t err = cudaSuccess;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const float alpha = 1.0f, beta = 0.0f;
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  uint32_t align_a = 256, align_b = 256, align_c = 256;
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
  if ((err = set_batch(a, batching.count, batching.w)) != cudaSuccess) goto cleanup;
  if ((err = set_batch(b, batching.count, batching.x)) != cudaSuccess) goto cleanup;
  if ((err = set_batch(c, batching.count, batching.out)) != cudaSuccess) goto cleanup;
  LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
  LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                              &ctx->workspace_bytes,
                                              sizeof(ctx->workspace_bytes)));
  // NOTE: cuBLASLt assumes 256-byte aligned matrices unless told otherwise; a strided view (a
  // head's slice, a batch past the first) may be aligned less, so say what each one has.
  align_a = alignment_of(w, batching.w * ab_bytes);
  align_b = alignment_of(x, batching.x * ab_bytes);
  align_c = alignment_of(out, batching.out * 4);
  LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                              &align_a, sizeof(align_a)));
  LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                              &align_b, sizeof(align_b)));
  LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                              &align_c, sizeof(align_c)));
  LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                              &align_c, sizeof(align_c)));
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
  return lt_gemm_batched(ctx, type, x, ldx, 0, w, ldw, 0, out, ldo, 0, 1, M, N, K, stream);
}

cudaError_t lt_gemm_batched(LtContext* ctx, ElemType type, const void* x, int64_t ldx,
                            int64_t x_batch, const void* w, int64_t ldw, int64_t w_batch,
                            float* out, int64_t ldo, int64_t out_batch, int64_t batch, int64_t M,
                            int64_t N, int64_t K, cudaStream_t stream) {
  cudaDataType_t t;
  int64_t bytes = 4;
  switch (type) {
    case ElemType::kF32: t = CUDA_R_32F; break;
    case ElemType::kF16: t = CUDA_R_16F; bytes = 2; break;
    case ElemType::kBF16: t = CUDA_R_16BF; bytes = 2; break;
    default: return cudaErrorInvalidValue;
  }
  if (batch < 0 || batch > INT32_MAX) return cudaErrorInvalidValue;
  // A single row or column never steps its leading dimension; cuBLASLt still wants it >= rows.
  if (M == 1) ldx = std::max(ldx, K), ldo = std::max(ldo, N);
  if (N == 1) ldw = std::max(ldw, K);
  const Batching batching{batch, x_batch, w_batch, out_batch};
  return run(ctx, t, bytes, x, ldx, w, ldw, out, ldo, M, N, K, nullptr, nullptr, batching, stream);
}

cudaError_t lt_gemm_fp8(LtContext* ctx, const uint8_t* x, int64_t ldx, const float* x_scale,
                        const uint8_t* w, int64_t ldw, const float* w_scale, float* out,
                        int64_t ldo, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  // NOTE: cuBLASLt FP8 wants the "TN" layout, which is exactly ours (A transposed).
  return run(ctx, CUDA_R_8F_E4M3, 1, x, ldx, w, ldw, out, ldo, M, N, K, w_scale, x_scale,
             Batching{}, stream);
}

}  // namespace tessera::kernels::cuda

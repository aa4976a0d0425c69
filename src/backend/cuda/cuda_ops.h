// Launch glue of the CUDA backend's op families that live outside cuda_backend.cc (memory,
// MoE, sampling, INT8, batched matmul, GGUF block types): free functions over the backend's
// context, called by CudaBackendImpl.
// Invariant: each checks its op contract (op_checks) first and stages host operands exactly as
// cuda_backend.cc does (Staging with the context's CaptureArena), so host and device tensors
// both work, and while capturing nothing touches host memory or waits.
#pragma once

#include <cuda_runtime.h>

#include <span>

#include "kernels/cuda/gemm/gemm.h"
#include "tessera/backend/backend.h"

namespace tessera::backend::cuda {

class CaptureArena;  // staging.h

struct CudaContext {
  int device = 0;
  cudaStream_t stream = nullptr;
  kernels::cuda::LtContext* lt = nullptr;
  int num_sms = 0;
  int sm_version = 0;             // major * 10 + minor
  CaptureArena* arena = nullptr;  // the backend's; says whether its stream is capturing
};

// An error for an op that cannot be recorded into a step graph (it reads host memory or waits
// for the device), when `ctx`'s stream is capturing; OK otherwise.
Status refuse_while_capturing(const CudaContext& ctx, const char* op, const char* why);

// cuda_memory.cc
Result<BackendTensor> cuda_allocate(const CudaContext& ctx, DType dtype,
                                    std::span<const int64_t> shape);
Result<BackendTensor> cuda_upload(const CudaContext& ctx, const Tensor& host);
Status cuda_download(const CudaContext& ctx, const Tensor& src, Tensor host_dst);
Status cuda_copy(const CudaContext& ctx, const Tensor& src, Tensor dst);
Status cuda_moe_combine(const CudaContext& ctx, const Tensor& x, const Tensor& weights, Tensor out);

// cuda_moe.cc
bool cuda_moe_supports(Op op, DType a, DType b);
Status cuda_moe_route(const CudaContext& ctx, const Tensor& logits, const Tensor& bias,
                      const MoeRouteParams& params, Tensor out_ids, Tensor out_weights);
Status cuda_moe_grouped_matmul(const CudaContext& ctx, const Tensor& x, const Tensor& w,
                               const Tensor& ids, Tensor out);
Status cuda_moe_grouped_matmul_block_scaled(const CudaContext& ctx, const Tensor& x,
                                            const Tensor& w, const Tensor& w_scale_inv,
                                            const Tensor& ids, const BlockScaleParams& block,
                                            Tensor out);

// cuda_fp8.cc
Status cuda_matmul_block_scaled(const CudaContext& ctx, const Tensor& x, const Tensor& w,
                                const Tensor& w_scale_inv, const BlockScaleParams& block,
                                Tensor out);

// cuda_batched.cc
Status cuda_matmul_batched(const CudaContext& ctx, const Tensor& x, const Tensor& w, Tensor out);

// cuda_sample.cc
Status cuda_sample(const CudaContext& ctx, const Tensor& logits,
                   std::span<const SampleParams> params, Tensor out_ids);

// cuda_int8.cc
Status cuda_matmul_int8(const CudaContext& ctx, const Tensor& x, const Tensor& w,
                        const Tensor& w_scale, Int8Mode mode, Tensor out);

// cuda_gguf.cc: matmul and embedding on GGUF block types (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K).
bool cuda_gguf_supports(DType type);
Status cuda_matmul_gguf(const CudaContext& ctx, const Tensor& x, const Tensor& w, Tensor out);
Status cuda_embedding_gguf(const CudaContext& ctx, const Tensor& table,
                           std::span<const int32_t> ids, Tensor out, MetadataAccess access);

}  // namespace tessera::backend::cuda

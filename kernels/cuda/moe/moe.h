// CUDA mixture-of-experts kernels: the router, the grouped expert GEMM (device-side grouping of
// (token, slot) pairs by expert, then one GEMM kernel over (expert row tile, column tile)) and
// the combine. Launchers take raw device pointers, strides in elements, and a stream.
// Invariant: nothing here synchronises with the host; the semantics are kernels/ref's (moe.cc,
// fp8_matmul.cc, memory.cc) and the index math lives in moe_logic.h (host-tested).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/types.h"
#include "kernels/cuda/moe/moe_logic.h"

namespace tessera::kernels::cuda {

// Routes T tokens, one warp per token.
//   logits   f32 [T, E]      row stride logits_stride
//   bias     f32 [E] or null (sigmoid only)
//   ids      i32 [T, top_k]  row stride ids_stride; descending selection score
//   weights  f32 [T, top_k]  row stride weights_stride
// E <= moe::kMaxRouteExperts (else cudaErrorNotSupported).
cudaError_t moe_route(const float* logits, int64_t logits_stride, const float* bias,
                      const moe::RouteParams& params, int32_t* ids, int64_t ids_stride,
                      float* weights, int64_t weights_stride, int64_t num_tokens,
                      cudaStream_t stream);

// Grouped expert GEMM: out[t, j, :] = x[t, :] @ dequant(w[ids[t, j]])^T.
struct GroupedGemmArgs {
  const float* x = nullptr;  // [T, K], row stride ldx (elements)
  int64_t ldx = 0;
  ElemType w_type = ElemType::kF32;  // f32, f16, bf16 or fp8_e4m3 (block-scaled)
  const void* w = nullptr;           // [E, N, K]
  int64_t w_expert_stride = 0;       // elements (bytes for fp8)
  int64_t w_row_stride = 0;          // elements (bytes for fp8)
  const float* w_scale = nullptr;    // fp8 only: [E, ceil(N / block_n), ceil(K / block_k)]
  int64_t scale_expert_stride = 0;   // elements
  int64_t scale_row_stride = 0;      // elements
  int64_t block_n = 128, block_k = 128;
  const int32_t* ids = nullptr;  // [T, top_k], row stride ids_stride
  int64_t ids_stride = 0;
  float* out = nullptr;  // [T, top_k, N], strides out_tok, out_slot (elements)
  int64_t out_tok = 0, out_slot = 0;
  int64_t num_tokens = 0, top_k = 0, num_experts = 0, n = 0, k = 0;
  void* workspace = nullptr;  // moe_grouped_gemm_workspace_bytes(num_tokens * top_k, E)
  // bf16 / f16 / fp8 weights run on tensor cores (mma.sync, x rounded to bf16 / f16) unless
  // this asks for the f32 CUDA-core kernel (the benchmark's cross-check).
  bool force_simt = false;
};

// Device scratch the grouped GEMM needs (counts, offsets, tile offsets, the sorted pair list).
int64_t moe_grouped_gemm_workspace_bytes(int64_t pairs, int64_t num_experts);

// NOTE: ids outside [0, E) (possible only for device-resident ids, which the backend cannot
// check without a host synchronisation) are skipped: their out rows are written as zeros.
cudaError_t moe_grouped_gemm(const GroupedGemmArgs& a, cudaStream_t stream);

// out[t, :] = sum_j weights[t, j] * x[t, j, :], summed in j order from 0 (no FMA contraction,
// so each output equals the reference's f32 loop bit for bit).
//   x        f32 [T, top_k, N]   strides x_tok, x_slot (elements)
//   weights  f32 [T, top_k]      row stride w_tok
//   out      f32 [T, N]          row stride out_tok
cudaError_t moe_combine(const float* x, int64_t x_tok, int64_t x_slot, const float* weights,
                        int64_t w_tok, float* out, int64_t out_tok, int64_t num_tokens,
                        int64_t top_k, int64_t n, cudaStream_t stream);

}  // namespace tessera::kernels::cuda

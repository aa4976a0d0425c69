// CUDA kernels for GGUF block-quantized weights (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K) kept in their
// block format on the device: matmul with f32 activations (a weight-streaming GEMV for decode,
// a CUDA-core tiled kernel otherwise) and row dequantisation (embedding gather, or a weight slab
// to f16 for a cuBLASLt prefill). Block decoding lives in gguf_block_logic.h (host-tested).
// Invariant: out[M, N] = x[M, K] @ dequant(w)[N, K]^T in row-major terms with f32 sums; every
// dequantised value equals kernels::ref::dequantize_row's bit for bit.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/types.h"
#include "kernels/cuda/gemm/gguf_block_logic.h"

namespace tessera::kernels::cuda {

// out f32 [M, N] (row stride ldo) = x f32 [M, K] (ldx) @ dequant(w)[N, K]^T.
//   w: N rows of K / block_elems(type) blocks, row stride ldw bytes (any alignment; 16-byte
//      aligned rows are copied with 16-byte loads). K is a multiple of the type's block size.
// M <= gguf::kGemvMaxM: the GEMV kernel (weights read once for all M rows); larger M: a
// CUDA-core 64 x 64 tiled kernel. cudaErrorInvalidValue for a type gguf::supported() refuses.
cudaError_t gemm_gguf(ElemType type, const float* x, int64_t ldx, const void* w, int64_t ldw,
                      float* out, int64_t ldo, int64_t M, int64_t N, int64_t K,
                      cudaStream_t stream);

// out [num_rows, K] (row stride ldo elements) = dequant(w row ids[r]), or row r when ids is
// null; out_type kF32 (exact, as the reference) or kF16 (rounded to nearest). ids i32
// [num_rows] in device memory, each in [0, rows of w) (not checked here).
cudaError_t dequantize_gguf_rows(ElemType type, const void* w, int64_t ldw, const int32_t* ids,
                                 int64_t num_rows, int64_t K, ElemType out_type, void* out,
                                 int64_t ldo, cudaStream_t stream);

}  // namespace tessera::kernels::cuda

// CUDA elementwise kernels: embedding gather, silu_mul, add and convert, on raw device
// pointers. Every launcher returns the launch's cudaError_t (cudaGetLastError after launch).
// Invariant: shapes were validated by the caller; innermost dims are contiguous.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/common/layout.h"

namespace tessera::kernels::cuda {

// out[t, :] = f32(table[ids[t], :]).   table f32|f16|bf16 [vocab, hidden] with row stride
// table_row_stride elements; ids [num_ids] (device); out f32 [num_ids, hidden] (out_rows).
cudaError_t embedding(ElemType table_type, const void* table, int64_t table_row_stride,
                      const int32_t* ids, int64_t num_ids, float* out, const RowLayout& out_rows,
                      cudaStream_t stream);

// out = silu(gate) * up, f32, all with the same logical shape. out may alias gate or up.
cudaError_t silu_mul(const float* gate, const RowLayout& gate_rows, const float* up,
                     const RowLayout& up_rows, float* out, const RowLayout& out_rows,
                     cudaStream_t stream);

// out = a + b, f32. out may alias a or b.
cudaError_t add(const float* a, const RowLayout& a_rows, const float* b, const RowLayout& b_rows,
                float* out, const RowLayout& out_rows, cudaStream_t stream);

// dst = src rounded to dst_type (f32, f16 or bf16; round to nearest even).
cudaError_t convert(const float* src, const RowLayout& src_rows, ElemType dst_type, void* dst,
                    const RowLayout& dst_rows, cudaStream_t stream);

}  // namespace tessera::kernels::cuda

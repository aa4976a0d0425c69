// CUDA elementwise kernels (see elementwise.h). One 2-D grid: y walks rows, x walks columns,
// so strided rows cost one row-offset computation per thread and nothing else.
#include "kernels/cuda/elementwise/elementwise.h"

#include "kernels/cuda/common/device_utils.cuh"

namespace tessera::kernels::cuda {
namespace {

constexpr int kThreads = 256;

dim3 rows_grid(const RowLayout& rows) {
  const int64_t cols = div_up(rows.row_elems, kThreads);
  // NOTE: gridDim.y is limited to 65535; rows beyond it are looped in the kernel.
  const int64_t ys = rows.num_rows < 65535 ? rows.num_rows : 65535;
  return dim3(static_cast<unsigned>(cols), static_cast<unsigned>(ys < 1 ? 1 : ys));
}

template <typename T>
__global__ void embedding_kernel(const T* table, int64_t table_row_stride, const int32_t* ids,
                                 int64_t num_ids, float* out, RowLayout out_rows) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= out_rows.row_elems) return;
  for (int64_t t = blockIdx.y; t < num_ids; t += gridDim.y) {
    const T* row = table + static_cast<int64_t>(ids[t]) * table_row_stride;
    out[row_offset(out_rows, t) + c] = load_f32(row + c);
  }
}

template <int kOp>  // 0: silu_mul, 1: add
__global__ void binary_kernel(const float* a, RowLayout a_rows, const float* b, RowLayout b_rows,
                              float* out, RowLayout out_rows) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= out_rows.row_elems) return;
  for (int64_t r = blockIdx.y; r < out_rows.num_rows; r += gridDim.y) {
    const float x = a[row_offset(a_rows, r) + c];
    const float y = b[row_offset(b_rows, r) + c];
    float v;
    if constexpr (kOp == 0) {
      v = x / (1.0f + expf(-x)) * y;
    } else {
      v = x + y;
    }
    out[row_offset(out_rows, r) + c] = v;
  }
}

template <typename T>
__global__ void convert_kernel(const float* src, RowLayout src_rows, T* dst, RowLayout dst_rows) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= dst_rows.row_elems) return;
  for (int64_t r = blockIdx.y; r < dst_rows.num_rows; r += gridDim.y) {
    store_f32(dst + row_offset(dst_rows, r) + c, src[row_offset(src_rows, r) + c]);
  }
}

}  // namespace

cudaError_t embedding(ElemType table_type, const void* table, int64_t table_row_stride,
                      const int32_t* ids, int64_t num_ids, float* out, const RowLayout& out_rows,
                      cudaStream_t stream) {
  if (num_ids == 0 || out_rows.row_elems == 0) return cudaSuccess;
  RowLayout grid_rows = out_rows;
  grid_rows.num_rows = num_ids;
  const dim3 grid = rows_grid(grid_rows);
  switch (table_type) {
    case ElemType::kF32:
      embedding_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const float*>(table),
                                                      table_row_stride, ids, num_ids, out,
                                                      out_rows);
      break;
    case ElemType::kF16:
      embedding_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const __half*>(table),
                                                      table_row_stride, ids, num_ids, out,
                                                      out_rows);
      break;
    case ElemType::kBF16:
      embedding_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(table),
                                                      table_row_stride, ids, num_ids, out,
                                                      out_rows);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t silu_mul(const float* gate, const RowLayout& gate_rows, const float* up,
                     const RowLayout& up_rows, float* out, const RowLayout& out_rows,
                     cudaStream_t stream) {
  if (out_rows.num_rows == 0 || out_rows.row_elems == 0) return cudaSuccess;
  binary_kernel<0><<<rows_grid(out_rows), kThreads, 0, stream>>>(gate, gate_rows, up, up_rows,
                                                                 out, out_rows);
  return cudaGetLastError();
}

cudaError_t add(const float* a, const RowLayout& a_rows, const float* b, const RowLayout& b_rows,
                float* out, const RowLayout& out_rows, cudaStream_t stream) {
  if (out_rows.num_rows == 0 || out_rows.row_elems == 0) return cudaSuccess;
  binary_kernel<1><<<rows_grid(out_rows), kThreads, 0, stream>>>(a, a_rows, b, b_rows, out,
                                                                 out_rows);
  return cudaGetLastError();
}

cudaError_t convert(const float* src, const RowLayout& src_rows, ElemType dst_type, void* dst,
                    const RowLayout& dst_rows, cudaStream_t stream) {
  if (dst_rows.num_rows == 0 || dst_rows.row_elems == 0) return cudaSuccess;
  const dim3 grid = rows_grid(dst_rows);
  switch (dst_type) {
    case ElemType::kF32:
      convert_kernel<<<grid, kThreads, 0, stream>>>(src, src_rows, static_cast<float*>(dst),
                                                    dst_rows);
      break;
    case ElemType::kF16:
      convert_kernel<<<grid, kThreads, 0, stream>>>(src, src_rows, static_cast<__half*>(dst),
                                                    dst_rows);
      break;
    case ElemType::kBF16:
      convert_kernel<<<grid, kThreads, 0, stream>>>(src, src_rows,
                                                    static_cast<__nv_bfloat16*>(dst), dst_rows);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda

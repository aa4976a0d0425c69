// CUDA strided row copy (see copy.h): one CTA per row (grid-stride over rows), threads over the
// row in the widest unit (16, 8, 4 or 1 bytes) that every base, stride and row length allows.
// Invariant: reads and writes only the bytes of the named rows.
#include "kernels/cuda/common/device_utils.cuh"
#include "kernels/cuda/memory/copy.h"

namespace tessera::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

template <typename U>
__global__ void copy_rows_kernel(const char* src, RowLayout s, char* dst, RowLayout d) {
  const int64_t units = s.row_elems / static_cast<int64_t>(sizeof(U));
  for (int64_t r = blockIdx.x; r < s.num_rows; r += gridDim.x) {
    const U* in = reinterpret_cast<const U*>(src + row_offset(s, r));
    U* out = reinterpret_cast<U*>(dst + row_offset(d, r));
    for (int64_t i = threadIdx.x; i < units; i += kThreads) out[i] = in[i];
  }
}

bool aligned(const void* p, const RowLayout& l, int64_t unit) {
  if (reinterpret_cast<uintptr_t>(p) % unit != 0 || l.row_elems % unit != 0) return false;
  for (int i = 0; i < l.outer_ndim; ++i) {
    if (l.stride[i] % unit != 0) return false;
  }
  return true;
}

template <typename U>
void launch(const void* src, const RowLayout& s, void* dst, const RowLayout& d,
            cudaStream_t stream) {
  const int64_t blocks = s.num_rows < kMaxBlocks ? s.num_rows : kMaxBlocks;
  copy_rows_kernel<U><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      static_cast<const char*>(src), s, static_cast<char*>(dst), d);
}

}  // namespace

cudaError_t copy_rows(const void* src, const RowLayout& src_rows, void* dst,
                      const RowLayout& dst_rows, cudaStream_t stream) {
  if (src_rows.num_rows != dst_rows.num_rows || src_rows.row_elems != dst_rows.row_elems) {
    return cudaErrorInvalidValue;
  }
  if (src_rows.num_rows == 0 || src_rows.row_elems == 0) return cudaSuccess;
  if (aligned(src, src_rows, 16) && aligned(dst, dst_rows, 16)) {
    launch<int4>(src, src_rows, dst, dst_rows, stream);
  } else if (aligned(src, src_rows, 8) && aligned(dst, dst_rows, 8)) {
    launch<int2>(src, src_rows, dst, dst_rows, stream);
  } else if (aligned(src, src_rows, 4) && aligned(dst, dst_rows, 4)) {
    launch<int>(src, src_rows, dst, dst_rows, stream);
  } else {
    launch<char>(src, src_rows, dst, dst_rows, stream);
  }
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda

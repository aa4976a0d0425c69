// Device helpers shared by the CUDA kernel families: element loads/stores for f32/f16/bf16,
// warp and block reductions, and the row-offset walk of a RowLayout.
// Invariant: block reductions assume blockDim.x is a multiple of 32 and at most 1024.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/common/layout.h"

namespace tessera::kernels::cuda {

__device__ __forceinline__ int64_t row_offset(const RowLayout& l, int64_t r) {
  int64_t off = 0;
  for (int d = l.outer_ndim - 1; d >= 0; --d) {
    off += (r % l.shape[d]) * l.stride[d];
    r /= l.shape[d];
  }
  return off;
}

// The 4 x 4 register tile of the CUDA-core GEMM fallbacks: acc[i][j] += a[i] * b[j].
__device__ __forceinline__ void fma_tile4x4(float (&acc)[4][4], const float (&a)[4],
                                            const float (&b)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
}

// Stores that tile: out[(row0 + i) * ldo + col0 + j] = acc[i][j] * col_scale(col0 + j) for the
// entries inside [M, N] (col_scale: a callable int64_t -> float).
template <typename ColScale>
__device__ __forceinline__ void store_tile4x4(const float (&acc)[4][4], int64_t row0, int64_t col0,
                                              int64_t M, int64_t N, float* out, int64_t ldo,
                                              ColScale col_scale) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = row0 + i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = col0 + j;
      if (n < N) out[m * ldo + n] = acc[i][j] * col_scale(n);
    }
  }
}

// The sequence of a packed batch (DESIGN.md "One step's batch") owning token row t: the last s
// with query_start[s] <= t (query_start [num_seqs + 1]).
__device__ __forceinline__ int find_seq(const int32_t* query_start, int64_t num_seqs, int64_t t) {
  int64_t lo = 0, hi = num_seqs;  // invariant: query_start[lo] <= t < query_start[hi]
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (query_start[mid] <= t)
      lo = mid;
    else
      hi = mid;
  }
  // Empty sequences share their start with the next one; skip forward past them.
  while (lo + 1 < num_seqs && query_start[lo + 1] <= t) ++lo;
  return static_cast<int>(lo);
}

__device__ __forceinline__ float load_f32(const float* p) { return *p; }
__device__ __forceinline__ float load_f32(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ float load_f32(const __nv_bfloat16* p) { return __bfloat162float(*p); }

__device__ __forceinline__ void store_f32(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_f32(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store_f32(__nv_bfloat16* p, float v) {
  *p = __float2bfloat16_rn(v);
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block; every thread gets the result. `shared` holds >= 32 values.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int num_warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T total = lane < num_warps ? shared[lane] : T(0);
  return warp_sum(total);
}

inline int div_up(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

}  // namespace tessera::kernels::cuda

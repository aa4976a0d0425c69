// GGUF block-quantized matmul and row dequantisation on CUDA (see gemm_gguf.h): a GEMV kernel
// for decode (8 warps x 4 weight rows per CTA, weight chunks copied to shared memory with wide
// coalesced loads, decoded in registers, dotted with every x row of the chunk, warp-shuffle
// reduced), a CUDA-core 64 x 64 tiled kernel for larger M, and a row dequantiser.
// Invariant: one template instance per block type and kernel; all decoding is
// gguf::group_value (host-tested bit-exact against kernels/ref).
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/cuda/common/device_utils.cuh"
#include "kernels/cuda/gemm/gemm_gguf.h"

namespace tessera::kernels::cuda {
namespace {

namespace g = gguf;

// `nbytes` from src to dst (shared) by the 32 lanes of a warp in `U` units, then a byte tail;
// src and dst are aligned to sizeof(U).
template <typename U>
__device__ __forceinline__ void warp_copy_units(uint8_t* dst, const uint8_t* src, int nbytes,
                                                int lane) {
  const int units = nbytes / static_cast<int>(sizeof(U));
  const U* s = reinterpret_cast<const U*>(src);
  U* d = reinterpret_cast<U*>(dst);
  for (int i = lane; i < units; i += 32) d[i] = s[i];
  for (int i = units * static_cast<int>(sizeof(U)) + lane; i < nbytes; i += 32) dst[i] = src[i];
}

__device__ __forceinline__ void warp_copy(uint8_t* dst, const uint8_t* src, int nbytes, int width,
                                          int lane) {
  if (width == 16) {
    warp_copy_units<uint4>(dst, src, nbytes, lane);
  } else if (width == 8) {
    warp_copy_units<uint2>(dst, src, nbytes, lane);
  } else if (width == 4) {
    warp_copy_units<uint32_t>(dst, src, nbytes, lane);
  } else if (width == 2) {
    warp_copy_units<uint16_t>(dst, src, nbytes, lane);
  } else {
    warp_copy_units<uint8_t>(dst, src, nbytes, lane);
  }
}

// GEMV: CTA b covers weight rows [32 b, 32 b + 32); warp w rows 32 b + 4 w + r. Per K chunk of
// 32 groups, lane l owns group l: it decodes the group of each of its warp's rows and adds its
// dot with every x row. Dynamic shared: x chunk f32 [M][kChunkGroups][kXPitch], then weight
// bytes [kGemvRows][chunk_pitch(T)].
template <ElemType T>
__global__ void __launch_bounds__(g::kGemvWarps * 32)
    gguf_gemv_kernel(const float* __restrict__ x, int64_t ldx, const uint8_t* __restrict__ w,
                     int64_t ldw, float* __restrict__ out, int64_t ldo, int M, int64_t N, int64_t K,
                     int width, bool x_vec) {
  extern __shared__ __align__(16) uint8_t smem[];
  constexpr int kGpb = g::groups_per_block(T), kBytes = g::block_bytes(T);
  constexpr int kPitch = g::chunk_pitch(T);
  float* xs = reinterpret_cast<float*>(smem);
  uint8_t* wbuf = smem + M * g::kChunkGroups * g::kXPitch * 4;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * g::kGemvRows + warp * g::kRowsPerWarp;
  uint8_t* my_w = wbuf + warp * g::kRowsPerWarp * kPitch;
  const int64_t groups = K / g::kGroup;
  float acc[g::kRowsPerWarp][g::kGemvMaxM];
#pragma unroll
  for (int r = 0; r < g::kRowsPerWarp; ++r) {
#pragma unroll
    for (int m = 0; m < g::kGemvMaxM; ++m) acc[r][m] = 0.0f;
  }
  for (int64_t g0 = 0; g0 < groups; g0 += g::kChunkGroups) {
    const int ng = static_cast<int>(min(static_cast<int64_t>(g::kChunkGroups), groups - g0));
    __syncthreads();  // the previous chunk is consumed
    const int nbytes = ng / kGpb * kBytes;
    const int64_t byte0 = g0 / kGpb * kBytes;
    for (int r = 0; r < g::kRowsPerWarp && row0 + r < N; ++r) {
      warp_copy(my_w + r * kPitch, w + (row0 + r) * ldw + byte0, nbytes, width, lane);
    }
    const int quads = ng * (g::kGroup / 4);
    for (int i = threadIdx.x; i < M * quads; i += blockDim.x) {
      const int m = i / quads, rem = i % quads, grp = rem / 8, q = rem % 8;
      const float* src = x + m * ldx + (g0 + grp) * g::kGroup + 4 * q;
      float4 v;
      if (x_vec) {
        v = *reinterpret_cast<const float4*>(src);
      } else {
        v = make_float4(src[0], src[1], src[2], src[3]);
      }
      *reinterpret_cast<float4*>(xs + (m * g::kChunkGroups + grp) * g::kXPitch + 4 * q) = v;
    }
    __syncthreads();
    if (lane < ng) {
      const int blk = lane / kGpb, sub = lane % kGpb;
#pragma unroll
      for (int r = 0; r < g::kRowsPerWarp; ++r) {
        if (row0 + r >= N) break;
        const uint8_t* b = my_w + r * kPitch + blk * kBytes;
        float v[g::kGroup];
#pragma unroll
        for (int j = 0; j < g::kGroup; ++j) v[j] = g::group_value<T>(b, sub, j);
#pragma unroll
        for (int m = 0; m < g::kGemvMaxM; ++m) {
          if (m >= M) break;
          const float4* xr =
              reinterpret_cast<const float4*>(xs + (m * g::kChunkGroups + lane) * g::kXPitch);
          float s = 0.0f;
#pragma unroll
          for (int q = 0; q < g::kGroup / 4; ++q) {
            const float4 xv = xr[q];
            s = fmaf(v[4 * q], xv.x, s);
            s = fmaf(v[4 * q + 1], xv.y, s);
            s = fmaf(v[4 * q + 2], xv.z, s);
            s = fmaf(v[4 * q + 3], xv.w, s);
          }
          acc[r][m] += s;
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < g::kRowsPerWarp; ++r) {
#pragma unroll
    for (int m = 0; m < g::kGemvMaxM; ++m) {
      float s = acc[r][m];
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
      if (lane == 0 && m < M && row0 + r < N) out[m * ldo + row0 + r] = s;
    }
  }
}

// Tiled: CTA (bx, by) computes out[64 by .., 64 bx ..]; per K group every thread loads 8 x values
// and decodes 8 weight values (row t / 4, values 8 (t % 4) ..), both tiles stored k-major, then
// thread (t / 16, t % 16) adds its 4 x 4 outputs' products over the group's 32 k.
template <ElemType T>
__global__ void __launch_bounds__(g::kTileThreads)
    gguf_tiled_kernel(const float* __restrict__ x, int64_t ldx, const uint8_t* __restrict__ w,
                      int64_t ldw, float* __restrict__ out, int64_t ldo, int64_t M, int64_t N,
                      int64_t K) {
  __shared__ __align__(16) float xs[g::kGroup][g::kTilePitch];
  __shared__ __align__(16) float ws[g::kGroup][g::kTilePitch];
  const int t = threadIdx.x;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * g::kTile;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * g::kTile;
  const int lr = t / 4, part = t % 4;
  const int ty = t / 16, tx = t % 16;
  const bool x_ok = m0 + lr < M, w_ok = n0 + lr < N;
  const float* xrow = x + (x_ok ? (m0 + lr) * ldx : 0);
  const uint8_t* wrow = w + (w_ok ? (n0 + lr) * ldw : 0);
  float acc[4][4] = {};
  const int64_t groups = K / g::kGroup;
  for (int64_t grp = 0; grp < groups; ++grp) {
    float xv[8], wv[8];
    const uint8_t* blk = wrow + g::group_block_offset<T>(grp);
    const int sub = g::group_in_block<T>(grp);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      xv[i] = x_ok ? xrow[grp * g::kGroup + part * 8 + i] : 0.0f;
      wv[i] = w_ok ? g::group_value<T>(blk, sub, part * 8 + i) : 0.0f;
    }
    __syncthreads();  // the previous group's tiles are consumed
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      xs[part * 8 + i][lr] = xv[i];
      ws[part * 8 + i][lr] = wv[i];
    }
    __syncthreads();
#pragma unroll 8
    for (int k = 0; k < g::kGroup; ++k) {
      const float4 a = *reinterpret_cast<const float4*>(&xs[k][ty * 4]);
      const float4 b = *reinterpret_cast<const float4*>(&ws[k][tx * 4]);
      const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
      fma_tile4x4(acc, av, bv);
    }
  }
  store_tile4x4(acc, m0 + ty * 4, n0 + tx * 4, M, N, out, ldo, [](int64_t) { return 1.0f; });
}

// out row r [K] = dequant(w row ids[r] or r); thread k of grid x, rows strided over grid y.
template <ElemType T, typename OutT>
__global__ void gguf_dequant_rows_kernel(const uint8_t* __restrict__ w, int64_t ldw,
                                         const int32_t* __restrict__ ids, int64_t num_rows,
                                         int64_t K, OutT* __restrict__ out, int64_t ldo) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= K) return;
  for (int64_t r = blockIdx.y; r < num_rows; r += gridDim.y) {
    const int64_t src = ids != nullptr ? static_cast<int64_t>(ids[r]) : r;
    const float v = g::row_value<T>(w + src * ldw, k);
    if constexpr (sizeof(OutT) == 4) {
      out[r * ldo + k] = v;
    } else {
      out[r * ldo + k] = __float2half_rn(v);
    }
  }
}

template <ElemType T>
cudaError_t launch_gemm(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw, float* out,
                        int64_t ldo, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  if (M <= g::kGemvMaxM) {
    const int64_t smem = g::gemv_smem_bytes(T, M);
    if (smem > 48 * 1024) {
      // NOTE: a per-device attribute, so set on every such launch (a host-side call).
      const cudaError_t attr = cudaFuncSetAttribute(
          gguf_gemv_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
      if (attr != cudaSuccess) return attr;
    }
    const bool x_vec = reinterpret_cast<uintptr_t>(x) % 16 == 0 && ldx % 4 == 0;
    const int width = g::copy_width(T, reinterpret_cast<uintptr_t>(w), ldw);
    const int64_t ctas = (N + g::kGemvRows - 1) / g::kGemvRows;
    gguf_gemv_kernel<T><<<static_cast<unsigned>(ctas), g::kGemvWarps * 32, smem, stream>>>(
        x, ldx, w, ldw, out, ldo, static_cast<int>(M), N, K, width, x_vec);
  } else {
    const dim3 grid(static_cast<unsigned>((N + g::kTile - 1) / g::kTile),
                    static_cast<unsigned>((M + g::kTile - 1) / g::kTile));
    gguf_tiled_kernel<T><<<grid, g::kTileThreads, 0, stream>>>(x, ldx, w, ldw, out, ldo, M, N, K);
  }
  return cudaGetLastError();
}

template <ElemType T>
cudaError_t launch_dequant(const uint8_t* w, int64_t ldw, const int32_t* ids, int64_t num_rows,
                           int64_t K, ElemType out_type, void* out, int64_t ldo,
                           cudaStream_t stream) {
  constexpr int kThreads = 256;
  const dim3 grid(static_cast<unsigned>((K + kThreads - 1) / kThreads),
                  static_cast<unsigned>(std::min<int64_t>(num_rows, 65535)));
  if (out_type == ElemType::kF32) {
    gguf_dequant_rows_kernel<T, float>
        <<<grid, kThreads, 0, stream>>>(w, ldw, ids, num_rows, K, static_cast<float*>(out), ldo);
  } else if (out_type == ElemType::kF16) {
    gguf_dequant_rows_kernel<T, __half>
        <<<grid, kThreads, 0, stream>>>(w, ldw, ids, num_rows, K, static_cast<__half*>(out), ldo);
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t gemm_gguf(ElemType type, const float* x, int64_t ldx, const void* w, int64_t ldw,
                      float* out, int64_t ldo, int64_t M, int64_t N, int64_t K,
                      cudaStream_t stream) {
  if (!g::supported(type) || K % g::block_elems(type) != 0) return cudaErrorInvalidValue;
  if (M == 0 || N == 0) return cudaSuccess;
  if (M > g::kGemvMaxM && (M + g::kTile - 1) / g::kTile > 65535) return cudaErrorInvalidValue;
  const auto* wb = static_cast<const uint8_t*>(w);
#define TESSERA_GGUF_GEMM(T) \
  if (type == T) return launch_gemm<T>(x, ldx, wb, ldw, out, ldo, M, N, K, stream)
  TESSERA_GGUF_GEMM(ElemType::kQ4_0);
  TESSERA_GGUF_GEMM(ElemType::kQ4_1);
  TESSERA_GGUF_GEMM(ElemType::kQ8_0);
  TESSERA_GGUF_GEMM(ElemType::kQ4_K);
  TESSERA_GGUF_GEMM(ElemType::kQ6_K);
#undef TESSERA_GGUF_GEMM
  return cudaErrorInvalidValue;
}

cudaError_t dequantize_gguf_rows(ElemType type, const void* w, int64_t ldw, const int32_t* ids,
                                 int64_t num_rows, int64_t K, ElemType out_type, void* out,
                                 int64_t ldo, cudaStream_t stream) {
  if (!g::supported(type) || K % g::block_elems(type) != 0) return cudaErrorInvalidValue;
  if (num_rows == 0 || K == 0) return cudaSuccess;
  const auto* wb = static_cast<const uint8_t*>(w);
#define TESSERA_GGUF_DEQUANT(T) \
  if (type == T) return launch_dequant<T>(wb, ldw, ids, num_rows, K, out_type, out, ldo, stream)
  TESSERA_GGUF_DEQUANT(ElemType::kQ4_0);
  TESSERA_GGUF_DEQUANT(ElemType::kQ4_1);
  TESSERA_GGUF_DEQUANT(ElemType::kQ8_0);
  TESSERA_GGUF_DEQUANT(ElemType::kQ4_K);
  TESSERA_GGUF_DEQUANT(ElemType::kQ6_K);
#undef TESSERA_GGUF_DEQUANT
  return cudaErrorInvalidValue;
}

}  // namespace tessera::kernels::cuda

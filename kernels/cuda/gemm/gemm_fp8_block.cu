// Block-scaled FP8 e4m3 GEMM (see gemm.h): the activation quantisation kernel, the launcher
// that picks the opt-in wgmma path (gemm_fp8_wgmma.cu, sm_90a, TESSERA_FP8_WGMMA=1), the
// tensor-core path (gemm_fp8_mma.cu, sm_89+) or the CUDA-core fallback here
// (sm_80: 64x64 output tile per CTA, each 128-wide K group accumulated in f32 registers, then
// scaled by x_scale[m, g] * w_scale[n / 128, g] and added to the running f32 sum).
// Invariant: both paths compute the same per-group promotion; K tails read zeros, never past K.
#include <cuda_fp8.h>

#include "kernels/cuda/gemm/fp8_block_logic.h"
#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemm_fp8_internal.h"

namespace tessera::kernels::cuda {
namespace {

constexpr int kTile = 64;
constexpr int kGroup = fp8::kGroup;
constexpr int kKStep = 32;
constexpr int kThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each

__device__ __forceinline__ float fp8_to_f32(uint8_t v) {
  __nv_fp8_e4m3 f;
  f.__x = v;
  return static_cast<float>(f);
}

// One CTA per (row, group) (grid x = rows, y = groups): 128 threads, one element each.
__global__ void __launch_bounds__(kGroup)
    quantize_kernel(const float* x, int64_t ldx, int64_t K, uint8_t* xq, uint8_t* xq_lo,
                    int64_t ldxq, float* x_scale, int64_t ld_xs) {
  __shared__ float red[kGroup / 32];
  const int64_t m = blockIdx.x;
  const int64_t k = static_cast<int64_t>(blockIdx.y) * kGroup + threadIdx.x;
  const float v = k < K ? x[m * ldx + k] : 0.0f;
  float a = fabsf(v);
  a = a != a ? 0.0f : a;  // NaN stays NaN in its own code, not in the scale
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = a;
  __syncthreads();
  const float amax = fmaxf(fmaxf(red[0], red[1]), fmaxf(red[2], red[3]));
  const float s = fp8::act_scale(amax);
  const uint8_t hi = k < K ? fp8::act_code(v, s) : 0;
  xq[m * ldxq + k] = hi;
  if (xq_lo != nullptr) xq_lo[m * ldxq + k] = k < K ? fp8::act_code_lo(v, s, hi) : 0;
  if (threadIdx.x == 0) x_scale[m * ld_xs + blockIdx.y] = s;
}

__global__ void __launch_bounds__(kThreads) fp8_block_cuda_core_kernel(Fp8BlockGemm g) {
  __shared__ float xs[kKStep][kTile + 1];
  __shared__ float ws[kKStep][kTile + 1];
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t groups = fp8::ceil_div(g.K, kGroup);
  const bool lo = g.xq_lo != nullptr && g.M <= 16;
  float total[4][4] = {};
  for (int64_t grp = 0; grp < groups; ++grp) {
    float part[4][4] = {};
    for (int kk = 0; kk < kGroup; kk += kKStep) {
      const int64_t k0 = grp * kGroup + kk;
      if (k0 >= g.K) break;
      for (int i = threadIdx.x; i < kTile * kKStep; i += kThreads) {
        const int r = i / kKStep, c = i % kKStep;
        const bool in_k = k0 + c < g.K;
        float xv = 0.0f;
        if (m0 + r < g.M && in_k) {
          const int64_t off = (m0 + r) * g.ldxq + k0 + c;
          xv = fp8_to_f32(g.xq[off]) + (lo ? fp8_to_f32(g.xq_lo[off]) : 0.0f);
        }
        xs[c][r] = xv;
        ws[c][r] = n0 + r < g.N && in_k ? fp8_to_f32(g.w[(n0 + r) * g.ldw + k0 + c]) : 0.0f;
      }
      __syncthreads();
#pragma unroll 8
      for (int c = 0; c < kKStep; ++c) {
        float a[4], b[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          a[i] = xs[c][ty * 4 + i];
          b[i] = ws[c][tx * 4 + i];
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
          for (int j = 0; j < 4; ++j) part[i][j] = fmaf(a[i], b[j], part[i][j]);
        }
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t m = m0 + ty * 4 + i;
      const float sx = m < g.M ? g.x_scale[m * g.ld_xs + grp] : 0.0f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t n = n0 + tx * 4 + j;
        const float sw = n < g.N ? g.w_scale[(n / kGroup) * g.ld_ws + grp] : 0.0f;
        total[i][j] = fmaf(part[i][j], sx * sw, total[i][j]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + ty * 4 + i;
    if (m >= g.M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tx * 4 + j;
      if (n < g.N) g.out[m * g.ldo + n] = total[i][j];
    }
  }
}

// One warp per output element, lanes across K.
__global__ void __launch_bounds__(256)
    fp8_any_block_kernel(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw,
                         const float* w_scale, int64_t ld_ws, int64_t block_n, int64_t block_k,
                         float* out, int64_t ldo, int64_t M, int64_t N, int64_t K) {
  const int64_t idx = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (idx >= M * N) return;
  const int64_t m = idx / N, n = idx % N;
  const float* xr = x + m * ldx;
  const uint8_t* wr = w + n * ldw;
  const float* sr = w_scale + (n / block_n) * ld_ws;
  float s = 0.0f;
  for (int64_t k = lane; k < K; k += 32) s = fmaf(xr[k], fp8_to_f32(wr[k]) * sr[k / block_k], s);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) out[m * ldo + n] = s;
}

int64_t mma_tiles(int64_t M, int64_t N) {
  return fp8::ceil_div(M, gemm_fp8_mma_tile_m(M)) * fp8::ceil_div(N, kGroup);
}

}  // namespace

cudaError_t quantize_fp8_rows(const float* x, int64_t ldx, int64_t M, int64_t K, uint8_t* xq,
                              uint8_t* xq_lo, int64_t ldxq, float* x_scale, int64_t ld_xs,
                              cudaStream_t stream) {
  if (M == 0 || K == 0) return cudaSuccess;
  if (fp8::ceil_div(K, kGroup) > 65535) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(M), static_cast<unsigned>(fp8::ceil_div(K, kGroup)));
  quantize_kernel<<<grid, kGroup, 0, stream>>>(x, ldx, K, xq, xq_lo, ldxq, x_scale, ld_xs);
  return cudaGetLastError();
}

int64_t gemm_fp8_block_workspace_bytes(int64_t M, int64_t N, int64_t K, int num_sms) {
  const int splits = fp8::choose_splits(mma_tiles(M, N), fp8::ceil_div(K, kGroup), num_sms);
  return splits > 1 ? splits * M * N * static_cast<int64_t>(sizeof(float)) : 0;
}

cudaError_t gemm_fp8_block_scaled(const Fp8BlockGemm& g, Fp8GemmPath path, int num_sms,
                                  void* workspace, cudaStream_t stream) {
  if (g.M == 0 || g.N == 0) return cudaSuccess;
  if (g.ldxq % 16 != 0 || (reinterpret_cast<uintptr_t>(g.xq) & 15) != 0 ||
      (reinterpret_cast<uintptr_t>(g.xq_lo) & 15) != 0) {
    return cudaErrorInvalidValue;
  }
  if (path == Fp8GemmPath::kWgmma) return gemm_fp8_wgmma(g, stream);
  if (path == Fp8GemmPath::kAuto && gemm_fp8_wgmma_requested() && gemm_fp8_wgmma_fits(g) &&
      gemm_fp8_wgmma_available()) {
    return gemm_fp8_wgmma(g, stream);  // opt-in until verified on a GPU (docs/cuda.md)
  }
  const bool mma = gemm_fp8_mma_available();
  if (path == Fp8GemmPath::kTensorCore && !mma) return cudaErrorNotSupported;
  if (path != Fp8GemmPath::kCudaCore && mma) {
    int splits = fp8::choose_splits(mma_tiles(g.M, g.N), fp8::ceil_div(g.K, kGroup), num_sms);
    if (workspace == nullptr) splits = 1;
    return gemm_fp8_mma(g, splits, static_cast<float*>(workspace), stream);
  }
  const dim3 grid(static_cast<unsigned>(fp8::ceil_div(g.N, kTile)),
                  static_cast<unsigned>(fp8::ceil_div(g.M, kTile)));
  fp8_block_cuda_core_kernel<<<grid, kThreads, 0, stream>>>(g);
  return cudaGetLastError();
}

cudaError_t gemm_fp8_dequant_any_block(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw,
                                       const float* w_scale, int64_t ld_ws, int64_t block_n,
                                       int64_t block_k, float* out, int64_t ldo, int64_t M,
                                       int64_t N, int64_t K, cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  if (block_n <= 0 || block_k <= 0) return cudaErrorInvalidValue;
  const int64_t blocks = fp8::ceil_div(M * N * 32, 256);
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  fp8_any_block_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
      x, ldx, w, ldw, w_scale, ld_ws, block_n, block_k, out, ldo, M, N, K);
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda

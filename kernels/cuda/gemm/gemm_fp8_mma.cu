// Tensor-core block-scaled FP8 GEMM: mma.sync m16n8k32 e4m3 x e4m3 -> f32 (sm_89+, so it runs
// on sm_90). A CTA owns a BM x 128 output tile (BM = 128 for prefill, 16 for decode), so its
// columns sit in one 128-row weight block: one w_scale per (CTA, K group). Each pipeline stage
// is one whole 128-wide K group (A: BM x 128 B, B: 128 x 128 B, cp.async double buffered); its
// partial sums live in f32 registers and are promoted (x_scale[m, kb] * w_scale) into the
// accumulator when the group ends. Decode shapes add split-K over groups (workspace + reduce).
// Invariant: shared rows are padded to 144 B so ldmatrix rows hit distinct banks; bytes past K
// or past M/N are zero-filled, never read from global memory.
#include <cuda_runtime.h>

#include "kernels/cuda/common/mma.cuh"
#include "kernels/cuda/gemm/fp8_block_logic.h"
#include "kernels/cuda/gemm/gemm_fp8_internal.h"

namespace tessera::kernels::cuda {
namespace {

constexpr int kGroup = fp8::kGroup;
constexpr int kRow = kGroup + 16;  // padded shared row (bytes)
constexpr int kStages = 2;
constexpr int kThreads = 256;
constexpr int kBN = 128;

template <int kWarpsM, int kWarpsN, int kMT, int kNT, bool kLoTile>
struct Cfg {
  static constexpr int kBM = kWarpsM * kMT * 16;
  static constexpr bool kLo = kLoTile;  // room for the residual A tile (xq_lo)
  static constexpr int kARows = kLo ? 2 * kBM : kBM;
  static_assert(kWarpsN * kNT * 8 == kBN, "CTA tile must be 128 columns wide");
  static_assert(kWarpsM * kWarpsN * 32 == kThreads, "8 warps");
  static_assert(kNT % 2 == 0, "B fragments load in pairs");
  static constexpr int kStageBytes = (kARows + kBN) * kRow;
  static constexpr int kSmemBytes = kStages * kStageBytes;
};
using Large = Cfg<2, 4, 4, 4, false>;  // 128 x 128, warp tile 64 x 32
using Small = Cfg<1, 8, 1, 2, true>;   // 16 x 128, warp tile 16 x 16, hi + lo activations

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
#define TESSERA_FP8_MMA 1
#endif

#ifdef TESSERA_FP8_MMA
__device__ __forceinline__ void mma_e4m3(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

// Loads K group `grp` of the CTA's A (BM x 128) and B (128 x 128) tiles into `stage`.
template <class C>
__device__ __forceinline__ void load_stage(const Fp8BlockGemm& g, uint8_t* stage, int64_t m0,
                                           int64_t n0, int64_t grp, bool w_aligned) {
#ifdef TESSERA_FP8_MMA
  uint8_t* as = stage;
  uint8_t* bs = stage + C::kARows * kRow;
  const int64_t k0 = grp * kGroup;
  const int a_rows = C::kLo && g.xq_lo != nullptr ? 2 * C::kBM : C::kBM;
  for (int c = threadIdx.x; c < a_rows * 8; c += kThreads) {
    const int r = c >> 3, col = (c & 7) * 16;
    const int rm = r < C::kBM ? r : r - C::kBM;  // rows kBM.. hold the residual tile
    const uint8_t* base = r < C::kBM ? g.xq : g.xq_lo;
    const bool ok = m0 + rm < g.M;  // xq is padded to whole groups: no K check
    const uint8_t* src = ok ? base + (m0 + rm) * g.ldxq + k0 + col : g.xq;
    cp_async16(as + r * kRow + col, src, ok ? 16 : 0);
  }
  for (int c = threadIdx.x; c < kBN * 8; c += kThreads) {
    const int r = c >> 3, col = (c & 7) * 16;
    const int64_t left = g.K - (k0 + col);
    const int bytes = n0 + r >= g.N || left <= 0 ? 0 : (left >= 16 ? 16 : static_cast<int>(left));
    uint8_t* dst = bs + r * kRow + col;
    const uint8_t* src = g.w + (n0 + r) * g.ldw + k0 + col;
    if (w_aligned) {
      cp_async16(dst, bytes > 0 ? src : g.w, bytes);
    } else {  // unaligned rows (test views): plain byte loads, zero past K
      uint32_t word[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        uint32_t v = 0;
#pragma unroll
        for (int b = 0; b < 4; ++b) {
          const int idx = i * 4 + b;
          v |= static_cast<uint32_t>(idx < bytes ? src[idx] : 0) << (8 * b);
        }
        word[i] = v;
      }
      *reinterpret_cast<uint4*>(dst) = make_uint4(word[0], word[1], word[2], word[3]);
    }
  }
#endif
}

template <class C, int kWarpsN, int kMT, int kNT>
__global__ void __launch_bounds__(kThreads, 1) fp8_mma_kernel(Fp8BlockGemm g, float* workspace) {
#ifdef TESSERA_FP8_MMA
  extern __shared__ __align__(16) uint8_t smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = warp / kWarpsN, wn = warp % kWarpsN;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kBN;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * C::kBM;
  const int64_t groups = fp8::ceil_div(g.K, kGroup);
  int64_t gb, ge;
  fp8::split_range(groups, gridDim.z, blockIdx.z, &gb, &ge);
  const bool w_aligned = (reinterpret_cast<uintptr_t>(g.w) & 15) == 0 && g.ldw % 16 == 0;
  const bool lo = C::kLo && g.xq_lo != nullptr;

  float acc[kMT][kNT][4];
#pragma unroll
  for (int i = 0; i < kMT; ++i)
#pragma unroll
    for (int j = 0; j < kNT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  const int row_base = wm * kMT * 16;
  const int col_base = wn * kNT * 8;
  if (gb < ge) load_stage<C>(g, smem, m0, n0, gb, w_aligned);
  cp_async_commit();
  for (int64_t grp = gb; grp < ge; ++grp) {
    const int buf = static_cast<int>((grp - gb) & 1);
    if (grp + 1 < ge)
      load_stage<C>(g, smem + (buf ^ 1) * C::kStageBytes, m0, n0, grp + 1, w_aligned);
    cp_async_commit();
    // Scales of this group, fetched before the wait so their latency overlaps it.
    const float sw = g.w_scale[(n0 / kGroup) * g.ld_ws + grp];
    float sx[kMT][2];
#pragma unroll
    for (int i = 0; i < kMT; ++i) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t m = m0 + row_base + i * 16 + h * 8 + (lane >> 2);
        sx[i][h] = m < g.M ? g.x_scale[m * g.ld_xs + grp] * sw : 0.0f;
      }
    }
    cp_async_wait<1>();
    __syncthreads();
    const uint8_t* as = smem + buf * C::kStageBytes;
    const uint8_t* bs = as + C::kARows * kRow;
    float part[kMT][kNT][4];
#pragma unroll
    for (int i = 0; i < kMT; ++i)
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) part[i][j][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < kGroup; kk += 32) {
      uint32_t a[kMT][4];
#pragma unroll
      for (int i = 0; i < kMT; ++i) {
        const int r = row_base + i * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        ldsm_x4(a[i], as + r * kRow + kk + (lane >> 4) * 16);
      }
      uint32_t b[kNT][2];
#pragma unroll
      for (int j = 0; j < kNT; j += 2) {
        const int n = col_base + j * 8 + (lane & 7) + (lane >> 4) * 8;
        uint32_t r[4];
        ldsm_x4(r, bs + n * kRow + kk + ((lane >> 3) & 1) * 16);
        b[j][0] = r[0];
        b[j][1] = r[1];
        b[j + 1][0] = r[2];
        b[j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < kMT; ++i)
#pragma unroll
        for (int j = 0; j < kNT; ++j) mma_e4m3(part[i][j], a[i], b[j][0], b[j][1]);
      if (lo) {  // residual codes: same units, same weight fragments
#pragma unroll
        for (int i = 0; i < kMT; ++i) {
          const int r = C::kBM + row_base + i * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
          ldsm_x4(a[i], as + r * kRow + kk + (lane >> 4) * 16);
        }
#pragma unroll
        for (int i = 0; i < kMT; ++i)
#pragma unroll
          for (int j = 0; j < kNT; ++j) mma_e4m3(part[i][j], a[i], b[j][0], b[j][1]);
      }
    }
    // Promotion: this group's partial sums, scaled, into the f32 accumulator.
#pragma unroll
    for (int i = 0; i < kMT; ++i)
#pragma unroll
      for (int j = 0; j < kNT; ++j) {
        acc[i][j][0] = fmaf(part[i][j][0], sx[i][0], acc[i][j][0]);
        acc[i][j][1] = fmaf(part[i][j][1], sx[i][0], acc[i][j][1]);
        acc[i][j][2] = fmaf(part[i][j][2], sx[i][1], acc[i][j][2]);
        acc[i][j][3] = fmaf(part[i][j][3], sx[i][1], acc[i][j][3]);
      }
    __syncthreads();  // the next iteration's prefetch overwrites this buffer
  }

  const bool split = gridDim.z > 1;
  float* dst = split ? workspace + blockIdx.z * g.M * g.N : g.out;
  const int64_t ld = split ? g.N : g.ldo;
#pragma unroll
  for (int i = 0; i < kMT; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t m = m0 + row_base + i * 16 + h * 8 + (lane >> 2);
      if (m >= g.M) continue;
#pragma unroll
      for (int j = 0; j < kNT; ++j) {
        const int64_t n = n0 + col_base + j * 8 + (lane & 3) * 2;
        if (n < g.N) dst[m * ld + n] = acc[i][j][2 * h];
        if (n + 1 < g.N) dst[m * ld + n + 1] = acc[i][j][2 * h + 1];
      }
    }
  }
#endif
}

// out[m, n] = sum_z workspace[z, m, n] (a fixed order: deterministic).
__global__ void split_reduce_kernel(Fp8BlockGemm g, const float* workspace, int splits) {
  const int64_t total = g.M * g.N;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int z = 0; z < splits; ++z) s += workspace[z * total + i];
    g.out[(i / g.N) * g.ldo + i % g.N] = s;
  }
}

template <class C, int kWarpsN, int kMT, int kNT>
cudaError_t launch(const Fp8BlockGemm& g, int splits, float* workspace, cudaStream_t stream) {
  auto* kernel = fp8_mma_kernel<C, kWarpsN, kMT, kNT>;
  cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(fp8::ceil_div(g.N, kBN)),
                  static_cast<unsigned>(fp8::ceil_div(g.M, C::kBM)), static_cast<unsigned>(splits));
  kernel<<<grid, kThreads, C::kSmemBytes, stream>>>(g, workspace);
  return cudaGetLastError();
}

}  // namespace

bool gemm_fp8_mma_available() {
  static const bool available = [] {
    cudaFuncAttributes attr{};
    if (cudaFuncGetAttributes(&attr, fp8_mma_kernel<Large, 4, 4, 4>) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return attr.binaryVersion >= 89;
  }();
  return available;
}

int gemm_fp8_mma_tile_m(int64_t M) { return M <= Small::kBM ? Small::kBM : Large::kBM; }

cudaError_t gemm_fp8_mma(const Fp8BlockGemm& g, int splits, float* workspace, cudaStream_t stream) {
  if (fp8::ceil_div(g.M, Small::kBM) > 65535 || splits > 65535) return cudaErrorInvalidValue;
  if (splits < 1 || (splits > 1 && workspace == nullptr)) splits = 1;
  const cudaError_t err = gemm_fp8_mma_tile_m(g.M) == Small::kBM
                              ? launch<Small, 8, 1, 2>(g, splits, workspace, stream)
                              : launch<Large, 4, 4, 4>(g, splits, workspace, stream);
  if (err != cudaSuccess || splits == 1) return err;
  const int64_t total = g.M * g.N;
  const unsigned blocks =
      static_cast<unsigned>(fp8::ceil_div(total, 256) < 4096 ? fp8::ceil_div(total, 256) : 4096);
  split_reduce_kernel<<<blocks, 256, 0, stream>>>(g, workspace, splits);
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda

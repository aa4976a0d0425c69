// Hopper block-scaled FP8 GEMM (sm_90a only, opt-in: TESSERA_FP8_WGMMA=1 or Fp8GemmPath::kWgmma):
// a CTA of 3 warpgroups owns a 128 x 128 output tile. Warpgroup 0 is the producer: one thread
// streams each 128-wide K group of A (128 x 128 B) and B (128 x 128 B) by TMA into a 5-stage ring
// of 128B-swizzled shared tiles guarded by full/empty mbarriers. Warpgroups 1-2 each run
// wgmma.mma_async m64n128k32 e4m3 on 64 rows (4 k32 steps per group, operands by descriptor) into
// an f32 partial, then promote it by x_scale[m, kb] * w_scale[n / 128, kb] into the accumulator.
// Invariant: all layout arithmetic comes from wgmma_logic.h (host-tested); device code exists
// only for sm_90a (__CUDA_ARCH_FEAT_SM90_ALL) and the kernel body is empty elsewhere. Compiled,
// not yet verified on a GPU: the launcher never picks it unless asked.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "kernels/cuda/common/mma.cuh"
#include "kernels/cuda/gemm/fp8_block_logic.h"
#include "kernels/cuda/gemm/gemm_fp8_internal.h"
#include "kernels/cuda/gemm/wgmma_logic.h"

namespace tessera::kernels::cuda {
namespace {

namespace wg = wgmma;

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TESSERA_FP8_WGMMA 1
#endif

#ifdef TESSERA_FP8_WGMMA

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        " selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (done == 0);
}

__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}

// 2D TMA tile load (box from the tensor map) at element coordinates (c0 inner, c1 outer);
// rows past the tensor are zero-filled and still count toward the barrier's byte total.
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1,
                                            uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}

__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_wait0() {
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}
// Pins a register's value in program order against the asynchronous wgmma (reads of the
// accumulator must not move above wgmma_wait0, writes not below the issue).
__device__ __forceinline__ void fence_reg(float& r) { asm volatile("" : "+f"(r)::"memory"); }

// d (64 rows x 128 cols of f32, m64n128 fragment) = A(desc) * B(desc)^T + (accumulate ? d : 0).
__device__ __forceinline__ void wgmma_m64n128k32(float (&d)[wg::kAccRegs], uint64_t desc_a,
                                                 uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, "
      "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, "
      "%37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, "
      "%55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
        "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
        "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
        "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate)
      : "memory");
}
#endif  // TESSERA_FP8_WGMMA

// Grid: one CTA per 128 x 128 tile, banded order (wg::tile_of). Shared memory: 1 KiB of
// alignment slack, kStages x {A 16 KiB, B 16 KiB}, then full[kStages] and empty[kStages].
__global__ void __launch_bounds__(wg::kThreads, 1)
    fp8_wgmma_kernel(const __grid_constant__ CUtensorMap map_a,
                     const __grid_constant__ CUtensorMap map_b, Fp8BlockGemm g) {
#ifdef TESSERA_FP8_WGMMA
  extern __shared__ __align__(16) uint8_t smem_raw[];
  const uint32_t raw = smem_addr(smem_raw);
  const uint32_t base = (raw + wg::kAtomBytes - 1) & ~static_cast<uint32_t>(wg::kAtomBytes - 1);
  const uint32_t bars = base + wg::kStages * wg::kStageBytes;
  auto full_bar = [&](int s) { return bars + 8u * s; };
  auto empty_bar = [&](int s) { return bars + 8u * (wg::kStages + s); };

  const int64_t tiles_m = fp8::ceil_div(g.M, wg::kBM), tiles_n = fp8::ceil_div(g.N, wg::kBN);
  int64_t tm, tn;
  wg::tile_of(blockIdx.x, tiles_m, tiles_n, &tm, &tn);
  const int64_t m0 = tm * wg::kBM, n0 = tn * wg::kBN;
  const int64_t groups = g.K / wg::kBK;
  const int wgi = threadIdx.x / 128;

  if (threadIdx.x == 0) {
    for (int s = 0; s < wg::kStages; ++s) {
      mbar_init(full_bar(s), 1);
      mbar_init(empty_bar(s), wg::kConsumers * 128);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  }
  __syncthreads();

  if (wgi == 0) {  // producer: one thread issues every TMA load
    if (threadIdx.x == 0) {
      for (int64_t i = 0; i < groups; ++i) {
        const int s = wg::stage_of(i);
        mbar_wait(empty_bar(s), wg::empty_parity(i));
        mbar_expect_tx(full_bar(s), wg::kStageBytes);
        const uint32_t a = base + s * wg::kStageBytes;
        const int k = static_cast<int>(i * wg::kBK);
        tma_load_2d(a, &map_a, k, static_cast<int>(m0), full_bar(s));
        tma_load_2d(a + wg::kTileBytes, &map_b, k, static_cast<int>(n0), full_bar(s));
      }
    }
    return;
  }

  const int cw = wgi - 1;  // consumer warpgroup: rows [64 cw, 64 cw + 64) of the tile
  const int warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  const int64_t r0 = m0 + cw * wg::kWgRows + wg::acc_row(warp, lane, 0);
  const int64_t r1 = m0 + cw * wg::kWgRows + wg::acc_row(warp, lane, 2);
  float acc[wg::kAccRegs], part[wg::kAccRegs];
#pragma unroll
  for (int j = 0; j < wg::kAccRegs; ++j) acc[j] = part[j] = 0.0f;

  for (int64_t i = 0; i < groups; ++i) {
    const int s = wg::stage_of(i);
    // Scales first: their global latency overlaps the barrier wait.
    const float sw = g.w_scale[wg::w_scale_index(n0, i, g.ld_ws)];
    const float s0 = r0 < g.M ? g.x_scale[wg::x_scale_index(r0, i, g.ld_xs)] * sw : 0.0f;
    const float s1 = r1 < g.M ? g.x_scale[wg::x_scale_index(r1, i, g.ld_xs)] * sw : 0.0f;
    mbar_wait(full_bar(s), wg::full_parity(i));
    const uint32_t a = base + s * wg::kStageBytes + cw * wg::kWgRows * wg::kBK;
    const uint32_t b = base + s * wg::kStageBytes + wg::kTileBytes;
#pragma unroll
    for (int j = 0; j < wg::kAccRegs; ++j) fence_reg(part[j]);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < wg::kKSteps; ++kk) {
      wgmma_m64n128k32(part, wg::kmajor_sw128_desc(a + 32 * kk), wg::kmajor_sw128_desc(b + 32 * kk),
                       kk > 0 ? 1 : 0);
    }
    wgmma_commit();
    wgmma_wait0();
#pragma unroll
    for (int j = 0; j < wg::kAccRegs; ++j) fence_reg(part[j]);
    mbar_arrive(empty_bar(s));  // this thread's reads of stage s are complete
#pragma unroll
    for (int j = 0; j < wg::kAccRegs; ++j) {
      acc[j] = fmaf(part[j], ((j >> 1) & 1) ? s1 : s0, acc[j]);
    }
  }

  const bool pairs = g.ldo % 2 == 0 && (reinterpret_cast<uintptr_t>(g.out) & 7) == 0;
#pragma unroll
  for (int j = 0; j < wg::kAccRegs; j += 2) {
    const int64_t m = ((j >> 1) & 1) ? r1 : r0;
    const int64_t n = n0 + wg::acc_col(lane, j);
    if (m >= g.M || n >= g.N) continue;
    float* dst = g.out + m * g.ldo + n;
    if (pairs && n + 1 < g.N) {
      *reinterpret_cast<float2*>(dst) = make_float2(acc[j], acc[j + 1]);
    } else {
      dst[0] = acc[j];
      if (n + 1 < g.N) dst[1] = acc[j + 1];
    }
  }
#endif  // TESSERA_FP8_WGMMA
}

// cuTensorMapEncodeTiled through the runtime's driver entry point (no libcuda link dependency).
PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault,
                                         &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

// A 2D e4m3 (as u8) tensor [rows, inner] with row pitch `ld` bytes, 128 x 128 boxes, 128B swizzle.
bool make_map(CUtensorMap* map, const void* ptr, int64_t inner, int64_t rows, int64_t ld) {
  const auto fn = encode_fn();
  if (fn == nullptr) return false;
  std::memset(map, 0, sizeof(*map));
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(inner), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld)};
  const cuuint32_t box[2] = {wg::kBK, wg::kBM};
  const cuuint32_t elem[2] = {1, 1};
  return fn(map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(ptr), dims, strides, box, elem,
            CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace

bool gemm_fp8_wgmma_available() {
  static const bool available = [] {
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    cudaFuncAttributes attr{};
    if (major != 9 || minor != 0 || cudaFuncGetAttributes(&attr, fp8_wgmma_kernel) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    // binaryVersion 90 alone would also accept a plain sm_90 (not 90a) build, whose kernel body
    // is empty; the real body holds two 64-register accumulators, the empty one a handful.
    return attr.binaryVersion == 90 && attr.numRegs >= 2 * wgmma::kAccRegs &&
           encode_fn() != nullptr;
  }();
  return available;
}

bool gemm_fp8_wgmma_requested() {
  static const bool on = [] {
    const char* v = std::getenv("TESSERA_FP8_WGMMA");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return on;
}

bool gemm_fp8_wgmma_fits(const Fp8BlockGemm& g) {
  return wgmma::shape_fits(g.M, g.N, g.K, g.ldxq, g.ldw, reinterpret_cast<uintptr_t>(g.xq),
                           reinterpret_cast<uintptr_t>(g.w)) &&
         fp8::ceil_div(g.M, wgmma::kBM) * fp8::ceil_div(g.N, wgmma::kBN) < 0x7fffffff;
}

cudaError_t gemm_fp8_wgmma(const Fp8BlockGemm& g, cudaStream_t stream) {
  if (!gemm_fp8_wgmma_available()) return cudaErrorNotSupported;
  if (!gemm_fp8_wgmma_fits(g)) return cudaErrorInvalidValue;
  CUtensorMap map_a, map_b;
  if (!make_map(&map_a, g.xq, g.K, g.M, g.ldxq) || !make_map(&map_b, g.w, g.K, g.N, g.ldw)) {
    return cudaErrorInvalidValue;
  }
  cudaError_t err = cudaFuncSetAttribute(
      fp8_wgmma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, wgmma::kSmemBytes);
  if (err != cudaSuccess) return err;
  const int64_t tiles = fp8::ceil_div(g.M, wgmma::kBM) * fp8::ceil_div(g.N, wgmma::kBN);
  fp8_wgmma_kernel<<<static_cast<unsigned>(tiles), wgmma::kThreads, wgmma::kSmemBytes, stream>>>(
      map_a, map_b, g);
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda

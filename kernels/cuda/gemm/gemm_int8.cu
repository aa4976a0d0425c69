// CUDA INT8 matmul (see gemm_int8.h): a per-token quantisation kernel (one CTA per row: amax,
// then q), the W8A8 GEMM (64x64 CTA tile, 4 warps of 32x32, mma.sync m16n8k32 s8 with int32
// accumulators, two-stage cp.async pipeline over 64-byte K stages) and the weight-only GEMM:
// mma.sync m16n8k16 bf16 with x split hi + lo (int8_wo_logic.h; multi-stage cp.async, split-K
// with f32 partials summed in a fixed order), and a CUDA-core f32 fallback (64x64 tile).
// NOTE: compiled, never run (no GPU here); index and quantisation math is int8_math.h and
// int8_wo_logic.h, which host tests check (the latter also mirrors the weight-only arithmetic).
#include <algorithm>

#include "kernels/cuda/common/device_attr.h"
#include "kernels/cuda/common/device_utils.cuh"
#include "kernels/cuda/common/mma.cuh"
#include "kernels/cuda/gemm/gemm_int8.h"
#include "kernels/cuda/gemm/int8_wo_logic.h"

namespace tessera::kernels::cuda {
namespace {

namespace q8 = int8;

constexpr int kQuantThreads = 256;

__device__ __forceinline__ float block_max(float v, float* shared) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  if ((threadIdx.x & 31) == 0) shared[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < blockDim.x / 32 ? shared[threadIdx.x] : 0.0f;
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    if (threadIdx.x == 0) shared[0] = v;
  }
  __syncthreads();
  return shared[0];
}

__global__ void __launch_bounds__(kQuantThreads)
    quantize_kernel(const float* x, int64_t ldx, int64_t K, int8_t* q, int64_t ldq,
                    float* x_scale) {
  __shared__ float warp_max[kQuantThreads / 32];
  const int64_t m = blockIdx.x;
  const float* xr = x + m * ldx;
  float amax = 0.0f;
  for (int64_t k = threadIdx.x; k < K; k += kQuantThreads) amax = fmaxf(amax, fabsf(xr[k]));
  const float s = q8::scale_of_amax(block_max(amax, warp_max));
  if (threadIdx.x == 0) x_scale[m] = s;
  int8_t* qr = q + m * ldq;
  for (int64_t k = threadIdx.x; k < ldq; k += kQuantThreads) {
    qr[k] = k < K ? q8::quantize_value(xr[k], s) : int8_t{0};
  }
}

// ---- W8A8 tensor-core GEMM ----

__device__ __forceinline__ void mma_s8(int32_t* c, const uint32_t* a, const uint32_t* b) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

struct W8A8Params {
  const int8_t* q;
  int64_t ldq;
  const float* x_scale;
  const int8_t* w;
  int64_t ldw;
  const float* w_scale;
  float* out;
  int64_t ldo;
  int64_t M, N, K;
  int splits;        // K splits (gridDim.z); > 1: partial dots go to `partial`
  int32_t* partial;  // [M, N] int32, zeroed, when splits > 1
};

// Copies K stage kt of the A (q) and B (w) tiles into shared buffer `sa` / `sb`.
template <bool kAlignedW>
__device__ __forceinline__ void load_stage(const W8A8Params& p, int64_t m0, int64_t n0, int64_t kt,
                                           int8_t* sa, int8_t* sb) {
  const int64_t k0 = kt * q8::kBK;
  for (int c = threadIdx.x; c < q8::kChunksPerTile; c += q8::kThreads) {
    const int row = q8::chunk_row(c), kb = q8::chunk_kbyte(c);
    const int64_t m = m0 + row;
    // q rows are padded to whole stages, so only rows past M need zero fill.
    const int8_t* a_src = p.q + (m < p.M ? m : p.M - 1) * p.ldq + k0 + kb;
    cp_async16(sa + q8::smem_offset(row, kb), a_src, m < p.M ? 16 : 0);
    const int64_t n = n0 + row, k = k0 + kb;
    if constexpr (kAlignedW) {
      const bool in = n < p.N && k < p.K;  // K % 16 == 0: a chunk is all in or all out
      cp_async16(sb + q8::smem_offset(row, kb), in ? p.w + n * p.ldw + k : p.w, in ? 16 : 0);
    } else {
      alignas(16) int8_t bytes[16];
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        bytes[i] = n < p.N && k + i < p.K ? p.w[n * p.ldw + k + i] : int8_t{0};
      }
      *reinterpret_cast<int4*>(sb + q8::smem_offset(row, kb)) = *reinterpret_cast<int4*>(bytes);
    }
  }
  cp_async_commit();
}

template <bool kAlignedW>
__global__ void __launch_bounds__(q8::kThreads) w8a8_kernel(W8A8Params p) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  __shared__ __align__(16) int8_t sa[2][q8::kBM * q8::kSmemPitch];
  __shared__ __align__(16) int8_t sb[2][q8::kBN * q8::kSmemPitch];
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * q8::kBM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * q8::kBN;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp / q8::kWarpsN, wn = warp % q8::kWarpsN;
  int32_t acc[2][4][4] = {};
  const int64_t k_tiles = (p.K + q8::kBK - 1) / q8::kBK;
  const int z = static_cast<int>(blockIdx.z);
  const int64_t kt_begin = q8::split_begin(k_tiles, z, p.splits);
  const int64_t kt_end = q8::split_begin(k_tiles, z + 1, p.splits);
  if (kt_begin < kt_end) load_stage<kAlignedW>(p, m0, n0, kt_begin, sa[0], sb[0]);
  for (int64_t kt = kt_begin; kt < kt_end; ++kt) {
    const int stage = static_cast<int>((kt - kt_begin) & 1);
    if (kt + 1 < kt_end) {
      load_stage<kAlignedW>(p, m0, n0, kt + 1, sa[stage ^ 1], sb[stage ^ 1]);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < q8::kBK; ks += 32) {
      uint32_t a[2][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const int row = wm * q8::kWarpM + mi * 16 + q8::frag_a_row(lane, r);
          a[mi][r] = *reinterpret_cast<const uint32_t*>(
              sa[stage] + q8::smem_offset(row, ks + q8::frag_a_k(lane, r)));
        }
      }
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int col = wn * q8::kWarpN + ni * 8 + q8::frag_b_col(lane);
          b[ni][r] = *reinterpret_cast<const uint32_t*>(
              sb[stage] + q8::smem_offset(col, ks + q8::frag_b_k(lane, r)));
        }
      }
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) mma_s8(acc[mi][ni], a[mi], b[ni]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t m = m0 + wm * q8::kWarpM + mi * 16 + q8::frag_c_row(lane, r);
        const int64_t n = n0 + wn * q8::kWarpN + ni * 8 + q8::frag_c_col(lane, r);
        if (m >= p.M || n >= p.N) continue;
        if (p.splits > 1) {
          atomicAdd(p.partial + m * p.N + n, acc[mi][ni][r]);  // int32: exact in any order
        } else {
          p.out[m * p.ldo + n] = q8::scale_output(acc[mi][ni][r], p.x_scale[m], p.w_scale[n]);
        }
      }
    }
  }
#endif
}

// out = scale_output(partial) once every split has added its dots.
__global__ void scale_partials_kernel(const int32_t* partial, const float* x_scale,
                                      const float* w_scale, float* out, int64_t ldo, int64_t M,
                                      int64_t N) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < M * N;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = i / N, n = i % N;
    out[m * ldo + n] = q8::scale_output(partial[i], x_scale[m], w_scale[n]);
  }
}

// ---- weight-only CUDA-core GEMM (fallback: unaligned operands, K % 16 != 0, pre-sm_80) ----

constexpr int kWoTile = 64;
constexpr int kWoKStep = 32;
constexpr int kWoThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each

__global__ void __launch_bounds__(kWoThreads)
    weight_only_kernel(const float* x, int64_t ldx, const int8_t* w, int64_t ldw,
                       const float* w_scale, float* out, int64_t ldo, int64_t M, int64_t N,
                       int64_t K) {
  __shared__ float xs[kWoKStep][kWoTile + 1];
  __shared__ float ws[kWoKStep][kWoTile + 1];
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kWoTile;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kWoTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kWoKStep) {
    for (int i = threadIdx.x; i < kWoTile * kWoKStep; i += kWoThreads) {
      const int r = i / kWoKStep, c = i % kWoKStep;
      const bool kin = k0 + c < K;
      xs[c][r] = kin && m0 + r < M ? x[(m0 + r) * ldx + k0 + c] : 0.0f;
      ws[c][r] = kin && n0 + r < N ? static_cast<float>(w[(n0 + r) * ldw + k0 + c]) : 0.0f;
    }
    __syncthreads();
#pragma unroll 8
    for (int c = 0; c < kWoKStep; ++c) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = xs[c][ty * 4 + i];
        b[i] = ws[c][tx * 4 + i];
      }
      fma_tile4x4(acc, a, b);
    }
    __syncthreads();
  }
  store_tile4x4(acc, m0 + ty * 4, n0 + tx * 4, M, N, out, ldo,
                [w_scale](int64_t n) { return w_scale[n]; });
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- weight-only tensor-core GEMM (int8_wo_logic.h) ----

struct WoParams {
  const float* x;  // [M, K], row stride ldx (floats)
  int64_t ldx;
  const int8_t* w;  // [N, K], row stride ldw (bytes)
  int64_t ldw;
  const float* w_scale;  // [N]
  float* out;            // [M, N], row stride ldo (floats)
  int64_t ldo;
  int64_t M, N, K;
  int splits;      // gridDim.z; > 1: raw dots go to `partial`
  float* partial;  // [splits, M, N] f32 when splits > 1
};

// Issues the cp.async copies of K stage kt: weight rows [kBN, kBK bytes] into `ws`, x rows
// [rows_m, kBK f32] into `xs` (rows past rows_m are never written). Chunks past K are zero.
__device__ __forceinline__ void wo_load_stage(const WoParams& p, int64_t m0, int64_t n0, int64_t kt,
                                              int rows_m, float* xs, int8_t* ws) {
  const int64_t k0 = kt * wo::kBK;
  for (int c = threadIdx.x; c < wo::kWChunks; c += wo::kThreads) {
    const int row = wo::w_chunk_row(c), kb = wo::w_chunk_k(c);
    const int64_t n = n0 + row, k = k0 + kb;
    const bool in = n < p.N && k < p.K;  // K % 16 == 0: a chunk is all in or all out
    cp_async16(ws + row * wo::kWPitch + kb, in ? p.w + n * p.ldw + k : p.w, in ? 16 : 0);
  }
  for (int c = threadIdx.x; c < rows_m * (wo::kBK / 4); c += wo::kThreads) {
    const int row = wo::x_chunk_row(c), kc = wo::x_chunk_k(c);
    const int64_t k = k0 + kc;
    const bool in = k < p.K;
    cp_async16(xs + row * wo::kXPitch + kc, in ? p.x + (m0 + row) * p.ldx + k : p.x, in ? 16 : 0);
  }
}

// Splits the x stage `xs` into bf16 hi + lo A fragments in `xa` (wo::xa_index order).
template <int kBM>
__device__ __forceinline__ void wo_split_stage(const float* xs, uint4* xa) {
  for (int s = threadIdx.x; s < (kBM / 16) * wo::kKSteps * 32; s += wo::kThreads) {
    const int mf = wo::slot_mfrag(s), ks = wo::slot_kstep(s), lane = wo::slot_lane(s);
    const int k = ks * 16 + wo::a_k(lane, 0);
    const float4 r0 =
        *reinterpret_cast<const float4*>(xs + (mf * 16 + wo::a_row(lane, 0)) * wo::kXPitch + k);
    const float4 r8 =
        *reinterpret_cast<const float4*>(xs + (mf * 16 + wo::a_row(lane, 1)) * wo::kXPitch + k);
    uint4 hi, lo;  // registers 0..3: (row g, k 4t..), (row g+8, k 4t..), (g, 4t+2..), (g+8, 4t+2..)
    split2<__nv_bfloat16>(r0.x, r0.y, hi.x, lo.x);
    split2<__nv_bfloat16>(r8.x, r8.y, hi.y, lo.y);
    split2<__nv_bfloat16>(r0.z, r0.w, hi.z, lo.z);
    split2<__nv_bfloat16>(r8.z, r8.w, hi.w, lo.w);
    xa[wo::xa_index(mf, ks, 0, lane)] = hi;
    xa[wo::xa_index(mf, ks, 1, lane)] = lo;
  }
}

// out[m0 .. + kBM, n0 .. + kBN] (or its split's partial) over K stages of split blockIdx.z.
// Shared memory: wo::Shape<kBM>::kSmemBytes, dynamic.
template <int kBM>
__global__ void __launch_bounds__(wo::kThreads) wo_mma_kernel(WoParams p) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  using S = wo::Shape<kBM>;
  extern __shared__ __align__(16) unsigned char wo_smem[];
  float* xs = reinterpret_cast<float*>(wo_smem);  // [kStages][kBM][kXPitch]
  int8_t* ws = reinterpret_cast<int8_t*>(wo_smem + S::kStages * S::kXStageBytes);
  uint4* xa = reinterpret_cast<uint4*>(wo_smem + S::kStages * (S::kXStageBytes + S::kWStageBytes));
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kBM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * wo::kBN;
  const int rows_m = static_cast<int>(min(static_cast<int64_t>(kBM), p.M - m0));
  // x rows past M: zero once, never loaded, so their A fragments stay zero.
  for (int i = threadIdx.x; i < S::kStages * kBM * (wo::kXPitch / 4); i += wo::kThreads) {
    if ((i / (wo::kXPitch / 4)) % kBM >= rows_m) {
      reinterpret_cast<float4*>(xs)[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
  }
  const int64_t k_tiles = wo::ceil_div(p.K, wo::kBK);
  const int z = static_cast<int>(blockIdx.z);
  const int64_t kt0 = wo::split_begin(k_tiles, z, p.splits);
  const int64_t n_kt = wo::split_begin(k_tiles, z + 1, p.splits) - kt0;
#pragma unroll
  for (int s = 0; s < S::kStages - 1; ++s) {
    if (s < n_kt) {
      wo_load_stage(p, m0, n0, kt0 + s, rows_m, xs + s * kBM * wo::kXPitch,
                    ws + s * S::kWStageBytes);
    }
    cp_async_commit();
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int mf0 = (warp / S::kWarpsN) * S::kMF;         // first m16 fragment of the warp
  const int wcol = (warp % S::kWarpsN) * (8 * S::kNF);  // first tile column of the warp
  float acc[S::kMF][S::kNF][4] = {};
  for (int64_t i = 0; i < n_kt; ++i) {
    cp_async_wait<S::kStages - 2>();  // stage i has landed (for this thread's copies)
    __syncthreads();                  // ... for all threads; stage i - 1 is free again
    const int64_t next = i + S::kStages - 1;
    if (next < n_kt) {
      const int sn = static_cast<int>(next % S::kStages);
      wo_load_stage(p, m0, n0, kt0 + next, rows_m, xs + sn * kBM * wo::kXPitch,
                    ws + sn * S::kWStageBytes);
    }
    cp_async_commit();
    const int st = static_cast<int>(i % S::kStages);
    wo_split_stage<kBM>(xs + st * kBM * wo::kXPitch, xa);
    __syncthreads();
    const int8_t* wt = ws + st * S::kWStageBytes;
#pragma unroll
    for (int ks = 0; ks < wo::kKSteps; ++ks) {
      uint32_t ahi[S::kMF][4], alo[S::kMF][4];
#pragma unroll
      for (int mi = 0; mi < S::kMF; ++mi) {
        const uint4 h = xa[wo::xa_index(mf0 + mi, ks, 0, lane)];
        const uint4 l = xa[wo::xa_index(mf0 + mi, ks, 1, lane)];
        ahi[mi][0] = h.x, ahi[mi][1] = h.y, ahi[mi][2] = h.z, ahi[mi][3] = h.w;
        alo[mi][0] = l.x, alo[mi][1] = l.y, alo[mi][2] = l.z, alo[mi][3] = l.w;
      }
#pragma unroll
      for (int ni = 0; ni < S::kNF; ++ni) {
        const int row = wcol + ni * 8 + wo::b_col(lane);
        const uint32_t word =
            *reinterpret_cast<const uint32_t*>(wt + row * wo::kWPitch + ks * 16 + wo::b_k(lane, 0));
        uint32_t b0, b1;
        wo::i8x4_to_bf16x2(word, b0, b1);
#pragma unroll
        for (int mi = 0; mi < S::kMF; ++mi) {
          mma16816<__nv_bfloat16>(acc[mi][ni], ahi[mi], b0, b1);
          mma16816<__nv_bfloat16>(acc[mi][ni], alo[mi], b0, b1);
        }
      }
    }
  }
#pragma unroll
  for (int mi = 0; mi < S::kMF; ++mi) {
#pragma unroll
    for (int ni = 0; ni < S::kNF; ++ni) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t m = m0 + wo::out_row<S>(warp, mi, lane, r);
        const int64_t n = n0 + wo::out_col<S>(warp, ni, lane, r);
        if (m >= p.M || n >= p.N) continue;
        if (p.splits > 1) {
          p.partial[(z * p.M + m) * p.N + n] = acc[mi][ni][r];
        } else {
          p.out[m * p.ldo + n] = acc[mi][ni][r] * p.w_scale[n];
        }
      }
    }
  }
#endif
}

// out[m, n] = (partial[0, m, n] + partial[1, m, n] + ...) * w_scale[n], splits in order.
__global__ void wo_reduce_kernel(const float* partial, int splits, const float* w_scale, float* out,
                                 int64_t ldo, int64_t M, int64_t N) {
  const int64_t MN = M * N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < MN;
       i += int64_t(gridDim.x) * blockDim.x) {
    float s = partial[i];
    for (int z = 1; z < splits; ++z) s += partial[z * MN + i];
    const int64_t m = i / N, n = i % N;
    out[m * ldo + n] = s * w_scale[n];
  }
}

}  // namespace

cudaError_t quantize_rows_int8(const float* x, int64_t ldx, int64_t M, int64_t K, int8_t* q,
                               int64_t ldq, float* x_scale, cudaStream_t stream) {
  if (M == 0) return cudaSuccess;
  if (ldq < K || M > 0x7fffffff) return cudaErrorInvalidValue;
  quantize_kernel<<<static_cast<unsigned>(M), kQuantThreads, 0, stream>>>(x, ldx, K, q, ldq,
                                                                          x_scale);
  return cudaGetLastError();
}

cudaError_t gemm_w8a8(const int8_t* q, int64_t ldq, const float* x_scale, const int8_t* w,
                      int64_t ldw, const float* w_scale, float* out, int64_t ldo, int64_t M,
                      int64_t N, int64_t K, int num_sms, int32_t* workspace, cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  if (ldq % q8::kBK != 0 || ldq < K || reinterpret_cast<uintptr_t>(q) % 16 != 0 || K > 131072 ||
      ceil_div(M, q8::kBM) > 65535) {
    return cudaErrorInvalidValue;
  }
  const int major = current_device_attribute<cudaDevAttrComputeCapabilityMajor>();
  if (major < 0) return cudaErrorInvalidDevice;
  if (major < 8) return cudaErrorNotSupported;  // mma.sync m16n8k32 s8 needs sm_80
  const int splits = workspace != nullptr ? q8::w8a8_splits(M, N, K, num_sms) : 1;
  cudaError_t err = cudaSuccess;
  if (splits > 1) {
    err = cudaMemsetAsync(workspace, 0, static_cast<size_t>(M * N) * 4, stream);
    if (err != cudaSuccess) return err;
  }
  const W8A8Params p{q, ldq, x_scale, w, ldw, w_scale, out, ldo, M, N, K, splits, workspace};
  const dim3 grid(static_cast<unsigned>(ceil_div(N, q8::kBN)),
                  static_cast<unsigned>(ceil_div(M, q8::kBM)), static_cast<unsigned>(splits));
  const bool aligned = reinterpret_cast<uintptr_t>(w) % 16 == 0 && ldw % 16 == 0 && K % 16 == 0;
  if (aligned) {
    w8a8_kernel<true><<<grid, q8::kThreads, 0, stream>>>(p);
  } else {
    w8a8_kernel<false><<<grid, q8::kThreads, 0, stream>>>(p);
  }
  err = cudaGetLastError();
  if (err != cudaSuccess || splits == 1) return err;
  const int64_t blocks = std::min<int64_t>(ceil_div(M * N, 256), 4096);
  scale_partials_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(workspace, x_scale,
                                                                           w_scale, out, ldo, M, N);
  return cudaGetLastError();
}

cudaError_t gemm_int8_weight_only_cuda_core(const float* x, int64_t ldx, const int8_t* w,
                                            int64_t ldw, const float* w_scale, float* out,
                                            int64_t ldo, int64_t M, int64_t N, int64_t K,
                                            cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  if (ceil_div(M, kWoTile) > 65535) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(ceil_div(N, kWoTile)),
                  static_cast<unsigned>(ceil_div(M, kWoTile)));
  weight_only_kernel<<<grid, kWoThreads, 0, stream>>>(x, ldx, w, ldw, w_scale, out, ldo, M, N, K);
  return cudaGetLastError();
}

cudaError_t gemm_int8_weight_only(const float* x, int64_t ldx, const int8_t* w, int64_t ldw,
                                  const float* w_scale, float* out, int64_t ldo, int64_t M,
                                  int64_t N, int64_t K, int num_sms, float* workspace,
                                  cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  const int major = current_device_attribute<cudaDevAttrComputeCapabilityMajor>();
  if (major < 0) return cudaErrorInvalidDevice;
  if (!wo::mma_eligible(major, reinterpret_cast<uintptr_t>(x), ldx, reinterpret_cast<uintptr_t>(w),
                        ldw, K)) {
    return gemm_int8_weight_only_cuda_core(x, ldx, w, ldw, w_scale, out, ldo, M, N, K, stream);
  }
  const int bm = wo::tile_m(M);
  if (ceil_div(M, bm) > 65535) return cudaErrorInvalidValue;
  const int splits = workspace != nullptr ? wo::splits(M, N, K, num_sms) : 1;
  const WoParams p{x, ldx, w, ldw, w_scale, out, ldo, M, N, K, splits, workspace};
  cudaError_t err = cudaSuccess;
  const dim3 grid(static_cast<unsigned>(ceil_div(N, wo::kBN)),
                  static_cast<unsigned>(ceil_div(M, bm)), static_cast<unsigned>(splits));
  if (bm == 16) {
    wo_mma_kernel<16><<<grid, wo::kThreads, wo::Shape<16>::kSmemBytes, stream>>>(p);
  } else {
    // NOTE: > 48 KiB of dynamic shared memory needs the opt-in (not a stream operation, so it is
    // legal while a graph is captured).
    err = cudaFuncSetAttribute(wo_mma_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               wo::Shape<64>::kSmemBytes);
    if (err != cudaSuccess) return err;
    wo_mma_kernel<64><<<grid, wo::kThreads, wo::Shape<64>::kSmemBytes, stream>>>(p);
  }
  err = cudaGetLastError();
  if (err != cudaSuccess || splits == 1) return err;
  const int64_t blocks = std::min<int64_t>(ceil_div(M * N, 256), 4096);
  wo_reduce_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(workspace, splits, w_scale,
                                                                      out, ldo, M, N);
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda

// CUDA grouped expert GEMM: (token, slot) pairs are counted per expert, scanned into row and
// row-tile offsets and listed in (token, slot) order per expert, all on the device; then one
// tiled kernel over (row tile, column tile) gathers x rows, runs its expert's weight tile and
// scatters to out[t, j, :]. The grid is sized by moe::max_row_tiles, so no count is read back.
// Invariant: every valid pair's row is computed by exactly one CTA column set, independently of
// its position in the list (results are deterministic); invalid ids yield zero rows.
// NOTE: bf16 / f16 / FP8 weights use mma.sync tensor cores (sm_80+) with plain shared-memory
// staging (no cp.async pipeline, no wgmma yet); f32 weights use an f32 CUDA-core kernel, which
// the other types can also request (force_simt) as a cross-check.
#include <cuda_fp8.h>

#include <type_traits>

#include "kernels/cuda/common/device_utils.cuh"
#include "kernels/cuda/common/mma.cuh"
#include "kernels/cuda/moe/moe.h"

namespace tessera::kernels::cuda {
namespace {

constexpr int kBM = 32;  // rows (pairs) per tile
constexpr int kBN = 64;  // output columns per tile
constexpr int kBK = 32;
constexpr int kThreads = 256;  // 16 x 16: 2 rows x 4 columns each
constexpr int kScanThreads = 256;
constexpr int64_t kMaxScanExperts = 12 * 1024;  // counts staged in 48 KiB of shared memory

struct Workspace {
  int32_t* counts;        // [E]
  int32_t* offsets;       // [E + 1]
  int32_t* tile_offsets;  // [E + 1]
  int32_t* sorted;        // [pairs]: pair index t * top_k + j, grouped by expert
};

Workspace carve(void* base, int64_t e_count) {
  auto* p = static_cast<int32_t*>(base);
  return Workspace{p, p + e_count, p + 2 * e_count + 1, p + 3 * e_count + 2};
}

__device__ __forceinline__ float fp8_e4m3_to_f32(uint8_t v) {
  __nv_fp8_e4m3 f;
  f.__x = v;
  return static_cast<float>(f);
}

// Counts pairs per expert; a pair with an invalid id gets a zero output row instead.
__global__ void count_kernel(GroupedGemmArgs a, int32_t* counts) {
  const int64_t pairs = a.num_tokens * a.top_k;
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= pairs) return;
  const int64_t t = p / a.top_k, j = p % a.top_k;
  const int32_t id = a.ids[t * a.ids_stride + j];
  if (moe::valid_expert(id, a.num_experts)) {
    atomicAdd(&counts[id], 1);
  } else {
    float* o = a.out + t * a.out_tok + j * a.out_slot;
    for (int64_t n = 0; n < a.n; ++n) o[n] = 0.0f;
  }
}

__global__ void scan_kernel(const int32_t* counts, int64_t e_count, int32_t* offsets,
                            int32_t* tile_offsets) {
  extern __shared__ int32_t staged[];
  for (int64_t e = threadIdx.x; e < e_count; e += blockDim.x) staged[e] = counts[e];
  __syncthreads();
  if (threadIdx.x == 0) moe::scan_offsets(staged, e_count, kBM, offsets, tile_offsets);
}

// One CTA per expert lists its pairs in (token, slot) order: a block-wide stream compaction
// over all pairs (ballot + popc per warp, warp totals scanned in shared memory).
__global__ void __launch_bounds__(kScanThreads)
    permute_kernel(GroupedGemmArgs a, const int32_t* offsets, int32_t* sorted) {
  __shared__ int32_t warp_total[kScanThreads / 32];
  const int32_t e = static_cast<int32_t>(blockIdx.x);
  int32_t next = offsets[e];
  if (offsets[e + 1] == next) return;
  const int64_t pairs = a.num_tokens * a.top_k;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t base = 0; base < pairs; base += kScanThreads) {
    const int64_t p = base + threadIdx.x;
    bool mine = false;
    if (p < pairs) mine = a.ids[(p / a.top_k) * a.ids_stride + p % a.top_k] == e;
    const uint32_t ballot = __ballot_sync(0xffffffffu, mine);
    if (lane == 0) warp_total[warp] = __popc(ballot);
    __syncthreads();
    int32_t before = 0, chunk = 0;
    for (int w = 0; w < kScanThreads / 32; ++w) {
      before += w < warp ? warp_total[w] : 0;
      chunk += warp_total[w];
    }
    if (mine)
      sorted[next + before + __popc(ballot & ((1u << lane) - 1u))] = static_cast<int32_t>(p);
    next += chunk;
    __syncthreads();  // warp_total is rewritten by the next chunk
  }
}

template <typename WT>
__device__ __forceinline__ float load_weight(const WT* row, int64_t k) {
  return load_f32(row + k);
}
template <>
__device__ __forceinline__ float load_weight<uint8_t>(const uint8_t* row, int64_t k) {
  return fp8_e4m3_to_f32(row[k]);
}

template <typename WT>
__global__ void __launch_bounds__(kThreads) grouped_gemm_kernel(GroupedGemmArgs a, Workspace ws) {
  constexpr bool kFp8 = sizeof(WT) == 1;
  __shared__ float xs[kBK][kBM + 1];
  __shared__ float wsm[kBK][kBN + 1];
  __shared__ int64_t x_row[kBM];  // element offset of each tile row's x row; -1: none
  const int64_t tile = blockIdx.x;
  if (tile >= ws.tile_offsets[a.num_experts]) return;  // the grid is an upper bound
  const moe::TileRows tr = moe::tile_rows_of(ws.offsets, ws.tile_offsets, a.num_experts, tile, kBM);
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * kBN;
  if (threadIdx.x < kBM) {
    x_row[threadIdx.x] =
        threadIdx.x < tr.count ? (ws.sorted[tr.begin + threadIdx.x] / a.top_k) * a.ldx : -1;
  }
  __syncthreads();
  const WT* w = static_cast<const WT*>(a.w) + tr.expert * a.w_expert_stride;
  const float* scale = kFp8 ? a.w_scale + tr.expert * a.scale_expert_stride : nullptr;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const bool active = ty * 2 < tr.count;  // NOTE: decode tiles hold few rows; idle threads load
  float acc[2][4] = {};
  for (int64_t k0 = 0; k0 < a.k; k0 += kBK) {
    for (int i = threadIdx.x; i < kBM * kBK; i += kThreads) {
      const int r = i / kBK, c = i % kBK;
      const int64_t k = k0 + c;
      xs[c][r] = x_row[r] >= 0 && k < a.k ? a.x[x_row[r] + k] : 0.0f;
    }
    for (int i = threadIdx.x; i < kBN * kBK; i += kThreads) {
      const int r = i / kBK, c = i % kBK;
      const int64_t n = n0 + r, k = k0 + c;
      float v = 0.0f;
      if (n < a.n && k < a.k) {
        v = load_weight(w + n * a.w_row_stride, k);
        if constexpr (kFp8) {
          v *= scale[(n / a.block_n) * a.scale_row_stride + k / a.block_k];
        }
      }
      wsm[c][r] = v;
    }
    __syncthreads();
    if (active) {
#pragma unroll 8
      for (int kk = 0; kk < kBK; ++kk) {
        const float x0 = xs[kk][ty * 2], x1 = xs[kk][ty * 2 + 1];
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const float wv = wsm[kk][tx + 16 * c];
          acc[0][c] = fmaf(x0, wv, acc[0][c]);
          acc[1][c] = fmaf(x1, wv, acc[1][c]);
        }
      }
    }
    __syncthreads();
  }
  for (int r = 0; r < 2; ++r) {
    const int row = ty * 2 + r;
    if (row >= tr.count) continue;
    const int64_t p = ws.sorted[tr.begin + row];
    float* o = a.out + (p / a.top_k) * a.out_tok + (p % a.top_k) * a.out_slot;
    for (int c = 0; c < 4; ++c) {
      const int64_t n = n0 + tx + 16 * c;
      if (n < a.n) o[n] = acc[r][c];
    }
  }
}

// ---- Tensor-core path (sm_80+ mma.sync m16n8k16, f32 accumulation) for 16-bit and FP8
// weights. x is rounded to the MMA type on its way to shared memory (as the dense matmul
// rounds x for cuBLASLt); FP8 weights are dequantised (code * block scale) and rounded to bf16.
// A CTA of 4 warps owns a 32 x 64 output tile; warp w computes columns [16 w, 16 w + 16) for
// all 32 rows (2 x 2 fragments).
constexpr int kMmaBM = 32, kMmaBN = 64, kMmaBK = 32, kMmaThreads = 128;
constexpr int kPad = 8;  // halves: a row pitch of 80 bytes keeps fragment loads conflict-free

__device__ __forceinline__ uint32_t ld32(const void* p) { return *static_cast<const uint32_t*>(p); }


constexpr int kXPerThread = kMmaBM * kMmaBK / kMmaThreads;         // 8 floats
constexpr int kWPerThread = kMmaBN * kMmaBK / kMmaThreads;         // 16 weights (scalar path)
constexpr int kWVecPerThread = kMmaBN * kMmaBK / 8 / kMmaThreads;  // 2 x 16 bytes

// One K step's operands in registers (x as f32; weights as f32 or raw 16-byte groups).
struct MmaStage {
  float x[kXPerThread];
  float w[kWPerThread];
  uint4 wq[kWVecPerThread];
  bool vec;
};

// WT: the stored weight type (bf16, f16, or uint8_t = fp8 e4m3); MT: the MMA operand type.
template <typename WT, typename MT>
__global__ void __launch_bounds__(kMmaThreads)
    grouped_mma_kernel(GroupedGemmArgs a, Workspace ws, bool vec_w) {
  constexpr bool kFp8 = sizeof(WT) == 1;
  __shared__ __align__(16) MT xs[kMmaBM][kMmaBK + kPad];
  __shared__ __align__(16) MT wsm[kMmaBN][kMmaBK + kPad];
  __shared__ int64_t x_row[kMmaBM];
  __shared__ int64_t scale_row[kFp8 ? kMmaBN : 1];  // scale row offset of each weight row
  const int64_t tile = blockIdx.x;
  if (tile >= ws.tile_offsets[a.num_experts]) return;
  const moe::TileRows tr =
      moe::tile_rows_of(ws.offsets, ws.tile_offsets, a.num_experts, tile, kMmaBM);
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * kMmaBN;
  if (threadIdx.x < kMmaBM) {
    x_row[threadIdx.x] =
        threadIdx.x < tr.count ? (ws.sorted[tr.begin + threadIdx.x] / a.top_k) * a.ldx : -1;
  }
  if (kFp8 && threadIdx.x < kMmaBN) {
    scale_row[threadIdx.x] = ((n0 + threadIdx.x) / a.block_n) * a.scale_row_stride;
  }
  __syncthreads();
  const WT* w = static_cast<const WT*>(a.w) + tr.expert * a.w_expert_stride;
  const float* scale = kFp8 ? a.w_scale + tr.expert * a.scale_expert_stride : nullptr;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, q = lane & 3;
  // The next K step's tile is fetched into registers while the current one is multiplied
  // (NOTE: one stage of latency hiding; decode-sized tiles are bound by these weight loads).
  // Thread roles: x and scalar weights, column c_s of rows r_s + 4u; vector weights, 8
  // columns from c_v of rows r_v + 32u.
  const int c_s = threadIdx.x % kMmaBK, r_s = threadIdx.x / kMmaBK;
  const int c_v = (threadIdx.x % (kMmaBK / 8)) * 8, r_v = threadIdx.x / (kMmaBK / 8);
  const int64_t w_step_s = (kMmaThreads / kMmaBK) * a.w_row_stride;
  const int64_t w_step_v = (kMmaThreads / (kMmaBK / 8)) * a.w_row_stride;
  const WT* w_s = w + (n0 + r_s) * a.w_row_stride + c_s;
  const WT* w_v = w + (n0 + r_v) * a.w_row_stride + c_v;
  MmaStage st;
  const auto fetch = [&](int64_t k0) {
    st.vec = !kFp8 && vec_w && k0 + kMmaBK <= a.k;
    const bool k_in = k0 + c_s < a.k;
#pragma unroll
    for (int u = 0; u < kXPerThread; ++u) {
      const int64_t xr = x_row[r_s + u * (kMmaThreads / kMmaBK)];
      st.x[u] = xr >= 0 && k_in ? a.x[xr + k0 + c_s] : 0.0f;
    }
    if (st.vec) {  // 16-byte loads: 8 weights each
#pragma unroll
      for (int u = 0; u < kWVecPerThread; ++u) {
        const bool in = n0 + r_v + u * (kMmaThreads / (kMmaBK / 8)) < a.n;
        st.wq[u] =
            in ? *reinterpret_cast<const uint4*>(w_v + u * w_step_v + k0) : make_uint4(0, 0, 0, 0);
      }
      return;
    }
    const int64_t kb = kFp8 ? (k0 + c_s) / a.block_k : 0;
#pragma unroll
    for (int u = 0; u < kWPerThread; ++u) {
      const int r = r_s + u * (kMmaThreads / kMmaBK);
      float v = 0.0f;
      if (k_in && n0 + r < a.n) {
        v = load_weight(w_s + u * w_step_s, k0);
        if constexpr (kFp8) v *= scale[scale_row[r] + kb];
      }
      st.w[u] = v;
    }
  };
  const auto put = [&]() {
#pragma unroll
    for (int u = 0; u < kXPerThread; ++u) {
      store_f32(&xs[r_s + u * (kMmaThreads / kMmaBK)][c_s], st.x[u]);
    }
    if (st.vec) {
#pragma unroll
      for (int u = 0; u < kWVecPerThread; ++u) {
        *reinterpret_cast<uint4*>(&wsm[r_v + u * (kMmaThreads / (kMmaBK / 8))][c_v]) = st.wq[u];
      }
      return;
    }
#pragma unroll
    for (int u = 0; u < kWPerThread; ++u) {
      store_f32(&wsm[r_s + u * (kMmaThreads / kMmaBK)][c_s], st.w[u]);
    }
  };
  float acc[2][2][4] = {};
  if (a.k > 0) fetch(0);
  for (int64_t k0 = 0; k0 < a.k; k0 += kMmaBK) {
    put();
    __syncthreads();
    if (k0 + kMmaBK < a.k) fetch(k0 + kMmaBK);
#pragma unroll
    for (int kk = 0; kk < kMmaBK; kk += 16) {
      uint32_t af[2][4], bf[2][2];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
        af[mi][0] = ld32(&xs[mi * 16 + g][kk + 2 * q]);
        af[mi][1] = ld32(&xs[mi * 16 + g + 8][kk + 2 * q]);
        af[mi][2] = ld32(&xs[mi * 16 + g][kk + 2 * q + 8]);
        af[mi][3] = ld32(&xs[mi * 16 + g + 8][kk + 2 * q + 8]);
      }
#pragma unroll
      for (int ni = 0; ni < 2; ++ni) {
        const int col = warp * 16 + ni * 8 + g;
        bf[ni][0] = ld32(&wsm[col][kk + 2 * q]);
        bf[ni][1] = ld32(&wsm[col][kk + 2 * q + 8]);
      }
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
        for (int ni = 0; ni < 2; ++ni) mma16816<MT>(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
      }
    }
    __syncthreads();
  }
  for (int mi = 0; mi < 2; ++mi) {
    for (int h = 0; h < 2; ++h) {
      const int row = mi * 16 + g + h * 8;
      if (row >= tr.count) continue;
      const int64_t p = ws.sorted[tr.begin + row];
      float* o = a.out + (p / a.top_k) * a.out_tok + (p % a.top_k) * a.out_slot;
      for (int ni = 0; ni < 2; ++ni) {
        const int64_t col = n0 + warp * 16 + ni * 8 + 2 * q;
        if (col < a.n) o[col] = acc[mi][ni][h * 2];
        if (col + 1 < a.n) o[col + 1] = acc[mi][ni][h * 2 + 1];
      }
    }
  }
}

// Whether every 8-weight group the vector loads touch is 16-byte aligned.
bool weights_vectorisable(const GroupedGemmArgs& a) {
  return reinterpret_cast<uintptr_t>(a.w) % 16 == 0 && a.w_row_stride % 8 == 0 &&
         a.w_expert_stride % 8 == 0;
}

}  // namespace

int64_t moe_grouped_gemm_workspace_bytes(int64_t pairs, int64_t num_experts) {
  return ((3 * num_experts + 2 + pairs) * 4 + 255) / 256 * 256;
}

cudaError_t moe_grouped_gemm(const GroupedGemmArgs& a, cudaStream_t stream) {
  const int64_t pairs = a.num_tokens * a.top_k;
  if (pairs == 0 || a.n == 0) return cudaSuccess;
  if (a.num_experts < 1 || a.num_experts > kMaxScanExperts || pairs > INT32_MAX) {
    return cudaErrorNotSupported;
  }
  const bool fp8 = a.w_type == ElemType::kFP8_E4M3;
  if (!fp8 && a.w_type != ElemType::kF32 && a.w_type != ElemType::kF16 &&
      a.w_type != ElemType::kBF16) {
    return cudaErrorNotSupported;
  }
  if (fp8 && (a.w_scale == nullptr || a.block_n <= 0 || a.block_k <= 0)) {
    return cudaErrorInvalidValue;
  }
  const Workspace ws = carve(a.workspace, a.num_experts);
  cudaError_t err = cudaMemsetAsync(ws.counts, 0, a.num_experts * 4, stream);
  if (err != cudaSuccess) return err;
  count_kernel<<<div_up(pairs, 256), 256, 0, stream>>>(a, ws.counts);
  scan_kernel<<<1, kScanThreads, a.num_experts * 4, stream>>>(ws.counts, a.num_experts, ws.offsets,
                                                              ws.tile_offsets);
  permute_kernel<<<static_cast<unsigned>(a.num_experts), kScanThreads, 0, stream>>>(a, ws.offsets,
                                                                                    ws.sorted);
  const dim3 grid(static_cast<unsigned>(moe::max_row_tiles(pairs, a.num_experts, kBM)),
                  static_cast<unsigned>(div_up(a.n, kBN)));
  if (a.w_type == ElemType::kF32) {
    grouped_gemm_kernel<float><<<grid, kThreads, 0, stream>>>(a, ws);
  } else if (a.force_simt) {
    if (a.w_type == ElemType::kF16) {
      grouped_gemm_kernel<__half><<<grid, kThreads, 0, stream>>>(a, ws);
    } else if (a.w_type == ElemType::kBF16) {
      grouped_gemm_kernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(a, ws);
    } else {
      grouped_gemm_kernel<uint8_t><<<grid, kThreads, 0, stream>>>(a, ws);
    }
  } else {
    static_assert(kMmaBM == kBM, "one row-tile size: the scan and the grid assume kBM");
    const dim3 mma_grid(grid.x, static_cast<unsigned>(div_up(a.n, kMmaBN)));
    const bool vec = weights_vectorisable(a);
    if (a.w_type == ElemType::kF16) {
      grouped_mma_kernel<__half, __half><<<mma_grid, kMmaThreads, 0, stream>>>(a, ws, vec);
    } else if (a.w_type == ElemType::kBF16) {
      grouped_mma_kernel<__nv_bfloat16, __nv_bfloat16>
          <<<mma_grid, kMmaThreads, 0, stream>>>(a, ws, vec);
    } else {
      grouped_mma_kernel<uint8_t, __nv_bfloat16>
          <<<mma_grid, kMmaThreads, 0, stream>>>(a, ws, false);
    }
  }
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda

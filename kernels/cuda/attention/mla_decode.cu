// MLA decode attention over the paged latent cache (V = the first Dv values of each K row,
// Hkv = 1, f16/bf16 cache, D <= 576, Dv <= 512). One CTA (8 warps) per (token, block of 16 or 32
// query heads, key partition): each latent row is staged once (cp.async, 32-key tiles, double
// buffered) and serves every head of the block for both Q K^T and P V, on mma.sync m16n8k16 with
// f32 accumulators. Q and P are split into hi + lo halves (two mma each) as in flash_prefill.cu,
// so results keep f32-level accuracy. Roles and tiling: mla_decode_logic.h.
// Invariant: keys outside the partition's [begin, end) are zero-filled and masked to -inf, never
// read from the cache; with one partition rows are written to `out`, else (m, l, acc) partials in
// paged_attention's workspace format, merged by its reduction kernel.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "kernels/cuda/attention/flash_tile_logic.h"
#include "kernels/cuda/attention/mla_decode_logic.h"
#include "kernels/cuda/attention/paged_attention.h"
#include "kernels/cuda/common/device_attr.h"
#include "kernels/cuda/common/device_utils.cuh"
#include "kernels/cuda/common/mma.cuh"

namespace tessera::kernels::cuda {
namespace {

using mla::kKeys;
using mla::kPitch;
using mla::kSPitch;
using mla::kThreads;

// Latent rows [kt0, kt0 + kKeys) into a stage: 16-byte chunks of the first kd16 * 16 columns;
// keys >= end and columns >= D are zero-filled (so P V never meets uninitialised values).
template <typename T>
__device__ __forceinline__ void load_tile(const PagedAttentionParams& p, const int32_t* table,
                                          int64_t kt0, int64_t end, int kd16, T* ks) {
  const T* kb = static_cast<const T*>(p.k);
  const int chunks = kd16 * 2;
  const int dim = static_cast<int>(p.head_dim);
  for (int c = threadIdx.x; c < kKeys * chunks; c += kThreads) {
    const int r = c / chunks, col = (c % chunks) * 8;
    const int64_t j = kt0 + r;
    const bool ok = j < end && col < dim;
    const T* src = kb;
    if (ok) {
      int64_t blk, slot;
      flash::key_block_slot(table, j, p.block_size, &blk, &slot);
      src = kb + blk * p.k_block + slot * p.k_slot + col;
    }
    cp_async16(ks + r * kPitch + col, src, ok ? 16 : 0);
  }
}

template <typename T, int MT>
__global__ void __launch_bounds__(kThreads, 1)
    mla_decode_kernel(PagedAttentionParams p, float* part_ml, float* part_acc) {
  constexpr int kRowsCta = 16 * MT;
  constexpr int kNt = mla::kMaxVDim / (mla::kWarps / MT) / 8;  // P V n-tiles per warp: 8 or 16
  constexpr int kTpr = mla::kThreads / kRowsCta;               // softmax threads per row
  constexpr int kKpt = kKeys / kTpr;                           // softmax keys per thread
  extern __shared__ __align__(16) uint8_t smem[];
  T* qs = reinterpret_cast<T*>(smem);                  // [2][32][kPitch]: hi rows, then lo rows
  T* kbuf = reinterpret_cast<T*>(smem + mla::kSmemQ);  // [2][kKeys][kPitch]
  float* sp = reinterpret_cast<float*>(smem + mla::kSmemQ + mla::kSmemK);  // [8][16][kSPitch]
  float* m_s = sp + mla::kWarps * 16 * kSPitch;
  float* l_s = m_s + 32;
  float* alpha_s = l_s + 32;

  const int64_t t = blockIdx.x;
  const int part = blockIdx.y;
  const int64_t h0 = static_cast<int64_t>(blockIdx.z) * kRowsCta;
  const int s = find_seq(p.query_start, p.num_seqs, t);
  const int64_t num_keys =
      p.positions ? p.positions[t] + 1
                  : flash::key_limit(p.seq_lens[s], p.query_start[s + 1] - p.query_start[s],
                                     t - p.query_start[s]);
  int64_t key_begin, key_end;
  mla::partition_range(num_keys, part, p.num_partitions > 1 ? p.partition_keys : 0, &key_begin,
                       &key_end);
  if (key_begin >= key_end) return;  // whole CTA: the partition is past this token's keys
  const int32_t* table = p.block_tables + s * p.bt_stride;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int dim = static_cast<int>(p.head_dim), dv = static_cast<int>(p.v_head_dim);
  const int kd16 = (dim + 15) / 16;

  const int num_tiles = static_cast<int>((key_end - key_begin + kKeys - 1) / kKeys);
  load_tile<T>(p, table, key_begin, key_end, kd16, kbuf);
  asm volatile("cp.async.commit_group;\n");

  // Q = hi + lo in T; rows past the head count and columns past D are zero.
  for (int e = threadIdx.x; e < kRowsCta * kd16 * 16; e += kThreads) {
    const int r = e / (kd16 * 16), d = e % (kd16 * 16);
    const int64_t h = h0 + r;
    const float v = (h < p.num_q_heads && d < dim) ? p.q[t * p.q_tok + h * p.q_head + d] : 0.0f;
    const T hi = from_f32<T>(v);
    qs[r * kPitch + d] = hi;
    qs[(32 + r) * kPitch + d] = from_f32<T>(v - to_f32(hi));
  }
  if (threadIdx.x < 32) {
    m_s[threadIdx.x] = -INFINITY;
    l_s[threadIdx.x] = 0.0f;
    alpha_s[threadIdx.x] = 0.0f;
  }

  const mla::ScoreRole sr = mla::score_role(warp, MT);
  int pv_mt, pv_col0;
  mla::pv_role(warp, MT, &pv_mt, &pv_col0);
  int sm_row, sm_key0;
  mla::softmax_role(threadIdx.x, MT, &sm_row, &sm_key0);
  const float scale_log2 = p.scale * 1.4426950408889634f;

  float o[kNt][4];
#pragma unroll
  for (int j = 0; j < kNt; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[j][e] = 0.0f;

  for (int kt = 0; kt < num_tiles; ++kt) {
    const int buf = kt & 1;
    const int64_t kt0 = key_begin + static_cast<int64_t>(kt) * kKeys;
    if (kt + 1 < num_tiles) {
      load_tile<T>(p, table, kt0 + kKeys, key_end, kd16, kbuf + (buf ^ 1) * kKeys * kPitch);
    }
    asm volatile("cp.async.commit_group;\n");
    asm volatile("cp.async.wait_group 1;\n");
    __syncthreads();
    const T* ks = kbuf + buf * kKeys * kPitch;

    // Phase A: this warp's partial scores (16 heads x 16 keys over its share of the k-steps).
    {
      float sc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
      const int qr = sr.mt_idx * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
      const int kr = sr.key_half * 16 + (lane & 7) + (lane >> 4) * 8;
      for (int kk = sr.dim_split; kk < kd16; kk += sr.splits) {
        uint32_t qh[4], ql[4], b[4];
        ldsm_x4(qh, qs + qr * kPitch + kk * 16 + (lane >> 4) * 8);
        ldsm_x4(ql, qs + (32 + qr) * kPitch + kk * 16 + (lane >> 4) * 8);
        ldsm_x4(b, ks + kr * kPitch + kk * 16 + ((lane >> 3) & 1) * 8);
        mma16816<T>(sc[0], qh, b[0], b[1]);
        mma16816<T>(sc[1], qh, b[2], b[3]);
        mma16816<T>(sc[0], ql, b[0], b[1]);
        mma16816<T>(sc[1], ql, b[2], b[3]);
      }
      float* tile = sp + warp * 16 * kSPitch;
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int col = j * 8 + (lane & 3) * 2;
        *reinterpret_cast<float2*>(tile + (lane >> 2) * kSPitch + col) =
            make_float2(sc[j][0], sc[j][1]);
        *reinterpret_cast<float2*>(tile + ((lane >> 2) + 8) * kSPitch + col) =
            make_float2(sc[j][2], sc[j][3]);
      }
    }
    __syncthreads();

    // Phase B: online softmax; row sm_row, keys sm_key0 .. + kKpt (one key half).
    {
      const int mi = sm_row / 16, rr = sm_row % 16;
      const int half = sm_key0 / 16, kc0 = sm_key0 % 16;
      const int splits = (mla::kWarps / MT) / 2;
      float sv[kKpt];
      float mx = -INFINITY;
#pragma unroll
      for (int i = 0; i < kKpt; ++i) {
        float acc = 0.0f;
        for (int ds = 0; ds < splits; ++ds) {
          acc += sp[mla::score_warp(mi, half, ds, MT) * 16 * kSPitch + rr * kSPitch + kc0 + i];
        }
        const float v = kt0 + sm_key0 + i < key_end ? acc * scale_log2 : -INFINITY;
        sv[i] = v;
        mx = fmaxf(mx, v);
      }
#pragma unroll
      for (int off = 1; off < kTpr; off <<= 1)
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      const float m_old = m_s[sm_row];
      const float m_new = fmaxf(m_old, mx);
      const float base = m_new == -INFINITY ? 0.0f : m_new;
      float* pdst = sp + mla::score_warp(mi, half, 0, MT) * 16 * kSPitch + rr * kSPitch + kc0;
      float sum = 0.0f;
#pragma unroll
      for (int i = 0; i < kKpt; ++i) {
        const float pv = exp2f(sv[i] - base);
        pdst[i] = pv;  // in place: only this thread reads or writes these elements
        sum += pv;
      }
#pragma unroll
      for (int off = 1; off < kTpr; off <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
      __syncwarp();
      if (sm_key0 == 0) {
        const float alpha = exp2f(m_old - base);  // 0 while the row has seen no key
        alpha_s[sm_row] = alpha;
        l_s[sm_row] = l_s[sm_row] * alpha + sum;
        m_s[sm_row] = m_new;
      }
    }
    __syncthreads();

    // Phase C: O (16 heads x this warp's value columns) = O * alpha + P V.
    {
      const int g = lane >> 2, c = lane & 3;
      const float a0 = alpha_s[pv_mt * 16 + g], a1 = alpha_s[pv_mt * 16 + g + 8];
#pragma unroll
      for (int j = 0; j < kNt; ++j) {
        o[j][0] *= a0;
        o[j][1] *= a0;
        o[j][2] *= a1;
        o[j][3] *= a1;
      }
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        const float* pt = sp + mla::score_warp(pv_mt, kk, 0, MT) * 16 * kSPitch;
        const float2 p00 = *reinterpret_cast<const float2*>(pt + g * kSPitch + 2 * c);
        const float2 p10 = *reinterpret_cast<const float2*>(pt + (g + 8) * kSPitch + 2 * c);
        const float2 p01 = *reinterpret_cast<const float2*>(pt + g * kSPitch + 2 * c + 8);
        const float2 p11 = *reinterpret_cast<const float2*>(pt + (g + 8) * kSPitch + 2 * c + 8);
        uint32_t a[4], al[4];
        split2<T>(p00.x, p00.y, a[0], al[0]);
        split2<T>(p10.x, p10.y, a[1], al[1]);
        split2<T>(p01.x, p01.y, a[2], al[2]);
        split2<T>(p11.x, p11.y, a[3], al[3]);
#pragma unroll
        for (int j = 0; j < kNt; j += 2) {
          if (pv_col0 + j * 8 >= dv) break;  // column pairs past Dv (within the zero-filled D)
          uint32_t b[4];
          ldsm_x4_t(b, ks + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kPitch + pv_col0 +
                           j * 8 + (lane >> 4) * 8);
          mma16816<T>(o[j], a, b[0], b[1]);
          mma16816<T>(o[j + 1], a, b[2], b[3]);
          mma16816<T>(o[j], al, b[0], b[1]);
          mma16816<T>(o[j + 1], al, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // the next prefetch overwrites this stage; sp is rewritten
  }

  const bool single = p.num_partitions <= 1;
  const int g = lane >> 2, c = lane & 3;
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int row = pv_mt * 16 + g + hh * 8;
    const int64_t qh = h0 + row;
    if (qh >= p.num_q_heads) continue;
    const float inv = 1.0f / l_s[row];
    const int64_t slot = (t * p.num_q_heads + qh) * p.num_partitions + part;
#pragma unroll
    for (int j = 0; j < kNt; ++j) {
      const int d = pv_col0 + j * 8 + 2 * c;
      if (d >= dv) break;
      const float v0 = o[j][2 * hh], v1 = o[j][2 * hh + 1];
      if (single) {
        float* orow = p.out + t * p.o_tok + qh * p.o_head;
        orow[d] = v0 * inv;
        if (d + 1 < dv) orow[d + 1] = v1 * inv;
      } else {
        float* arow = part_acc + slot * p.v_head_dim;
        arow[d] = v0;
        if (d + 1 < dv) arow[d + 1] = v1;
      }
    }
    if (!single && pv_col0 == 0 && c == 0) {
      part_ml[2 * slot] = m_s[row] * 0.6931471805599453f;  // natural-log units for the merge
      part_ml[2 * slot + 1] = l_s[row];
    }
  }
}

template <typename T, int MT>
cudaError_t launch(const PagedAttentionParams& p, float* part_ml, float* part_acc,
                   cudaStream_t stream) {
  auto* kernel = mla_decode_kernel<T, MT>;
  cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, mla::kSmemBytes);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(p.num_partitions),
                  static_cast<unsigned>(mla::head_blocks(p.num_q_heads, MT)));
  kernel<<<grid, kThreads, mla::kSmemBytes, stream>>>(p, part_ml, part_acc);
  return cudaGetLastError();
}

}  // namespace

bool mla_decode_supported(const PagedAttentionParams& p) {
  if (!p.allow_mla) return false;
  if (p.kv_type != ElemType::kF16 && p.kv_type != ElemType::kBF16) return false;
  if (p.k != p.v || p.num_kv_heads != 1 || p.k_block != p.v_block || p.k_slot != p.v_slot) {
    return false;
  }
  if (p.head_dim > mla::kMaxDim || p.head_dim % 8 != 0 || p.v_head_dim > mla::kMaxVDim ||
      p.v_head_dim > p.head_dim || p.v_head_dim <= 0) {
    return false;
  }
  if ((reinterpret_cast<uintptr_t>(p.k) & 15) != 0 || p.k_block % 8 != 0 || p.k_slot % 8 != 0) {
    return false;
  }
  if (mla::head_blocks(p.num_q_heads, mla::m_tiles(p.num_q_heads)) > 65535) return false;
  const int optin = current_device_attribute<cudaDevAttrMaxSharedMemoryPerBlockOptin>();
  return optin >= mla::kSmemBytes;
}

cudaError_t mla_decode(const PagedAttentionParams& p, float* part_ml, float* part_acc,
                       cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  if (!mla_decode_supported(p)) return cudaErrorInvalidValue;
  const bool half = p.kv_type == ElemType::kF16;
  if (mla::m_tiles(p.num_q_heads) == 1) {
    return half ? launch<__half, 1>(p, part_ml, part_acc, stream)
                : launch<__nv_bfloat16, 1>(p, part_ml, part_acc, stream);
  }
  return half ? launch<__half, 2>(p, part_ml, part_acc, stream)
              : launch<__nv_bfloat16, 2>(p, part_ml, part_acc, stream);
}

}  // namespace tessera::kernels::cuda

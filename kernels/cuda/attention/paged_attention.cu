// CUDA paged attention (see paged_attention.h). One CTA per (token, KV head, chunk of up to
// kHeadsPerCta query heads of its GQA group, key partition): each K/V row is loaded once for
// all those query heads. Keys stream through in tiles of kKeyTile with an online softmax;
// with several partitions (split-K, long contexts) a second kernel merges the partials.
// Sequences with long query runs go to the flash prefill kernel (flash_prefill.cu) when the
// cache allows; then `flash_run` > 0 and this kernel skips their rows (flash_tile_logic.h).
#include <cfloat>

#include "kernels/cuda/attention/flash_tile_logic.h"
#include "kernels/cuda/attention/mla_decode_logic.h"
#include "kernels/cuda/attention/paged_attention.h"
#include "kernels/cuda/common/device_utils.cuh"

namespace tessera::kernels::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kHeadsPerCta = 8;
constexpr int kKeyTile = 64;
constexpr int kMaxHeadDim = 576;   // DeepSeek MLA latent + rope dims
constexpr int kMaxVPerThread = 4;  // Dv <= kThreads * 4 = 512

__device__ __forceinline__ int64_t imin64(int64_t a, int64_t b) { return a < b ? a : b; }

__device__ int64_t num_keys_of(const PagedAttentionParams& p, int64_t t) {
  if (p.positions) return p.positions[t] + 1;
  const int s = find_seq(p.query_start, p.num_seqs, t);
  const int64_t n = p.query_start[s + 1] - p.query_start[s];
  const int64_t i = t - p.query_start[s];
  return p.seq_lens[s] - n + i + 1;
}

template <typename KV>
__global__ void __launch_bounds__(kThreads)
    paged_attention_kernel(PagedAttentionParams p, float* part_ml, float* part_acc, int flash_run) {
  __shared__ float q_s[kHeadsPerCta][kMaxHeadDim];
  __shared__ float s_s[kHeadsPerCta][kKeyTile];
  __shared__ float m_s[kHeadsPerCta], l_s[kHeadsPerCta], alpha_s[kHeadsPerCta];
  __shared__ int block_ids[kKeyTile];

  const int64_t t = blockIdx.x;
  const int part = blockIdx.y;
  const int64_t group = p.num_q_heads / p.num_kv_heads;
  const int64_t chunks = (group + kHeadsPerCta - 1) / kHeadsPerCta;
  const int64_t kvh = blockIdx.z / chunks;
  const int64_t h0 = kvh * group + (blockIdx.z % chunks) * kHeadsPerCta;
  const int nh = static_cast<int>(imin64(kHeadsPerCta, kvh * group + group - h0));

  const int s = find_seq(p.query_start, p.num_seqs, t);
  const int64_t n = p.query_start[s + 1] - p.query_start[s];
  if (flash::flash_owns(n, flash_run)) return;
  const int64_t num_keys =
      p.positions ? p.positions[t] + 1 : p.seq_lens[s] - n + (t - p.query_start[s]) + 1;
  const int64_t part_keys = p.num_partitions > 1 ? p.partition_keys : num_keys;
  const int64_t key_begin = part * part_keys;
  if (key_begin >= num_keys) return;  // whole CTA: this partition is past the sequence
  const int64_t key_end = imin64(num_keys, key_begin + part_keys);
  const int32_t* table = p.block_tables + s * p.bt_stride;

  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  for (int idx = threadIdx.x; idx < kHeadsPerCta * p.head_dim; idx += kThreads) {
    const int h = idx / static_cast<int>(p.head_dim);
    const int d = idx % static_cast<int>(p.head_dim);
    q_s[h][d] = h < nh ? p.q[t * p.q_tok + (h0 + h) * p.q_head + d] : 0.0f;
  }
  if (threadIdx.x < kHeadsPerCta) {
    m_s[threadIdx.x] = -INFINITY;
    l_s[threadIdx.x] = 0.0f;
  }
  float acc[kHeadsPerCta][kMaxVPerThread];
#pragma unroll
  for (int h = 0; h < kHeadsPerCta; ++h) {
#pragma unroll
    for (int c = 0; c < kMaxVPerThread; ++c) acc[h][c] = 0.0f;
  }
  const KV* kbase = static_cast<const KV*>(p.k) + kvh * p.k_head;
  const KV* vbase = static_cast<const KV*>(p.v) + kvh * p.v_head;
  __syncthreads();

  for (int64_t tile = key_begin; tile < key_end; tile += kKeyTile) {
    const int tile_n = static_cast<int>(imin64(kKeyTile, key_end - tile));
    for (int jl = threadIdx.x; jl < tile_n; jl += kThreads) {
      block_ids[jl] = table[(tile + jl) / p.block_size];
    }
    __syncthreads();
    // Scores: one warp per key, lanes across the head dim, every query head of the chunk.
    for (int jl = warp; jl < kKeyTile; jl += kWarps) {
      float dot[kHeadsPerCta];
#pragma unroll
      for (int h = 0; h < kHeadsPerCta; ++h) dot[h] = 0.0f;
      if (jl < tile_n) {
        const int64_t j = tile + jl;
        const KV* krow = kbase + block_ids[jl] * p.k_block + (j % p.block_size) * p.k_slot;
        for (int d = lane; d < p.head_dim; d += 32) {
          const float kv = load_f32(krow + d);
#pragma unroll
          for (int h = 0; h < kHeadsPerCta; ++h) dot[h] = fmaf(q_s[h][d], kv, dot[h]);
        }
      }
#pragma unroll
      for (int h = 0; h < kHeadsPerCta; ++h) {
        const float v = warp_sum(dot[h]);
        if (lane == 0) s_s[h][jl] = jl < tile_n ? v * p.scale : -INFINITY;
      }
    }
    __syncthreads();
    // Online softmax per head: one warp per head.
    for (int h = warp; h < kHeadsPerCta; h += kWarps) {
      const float a = s_s[h][lane], b = s_s[h][lane + 32];
      const float tile_max = warp_max(fmaxf(a, b));
      const float m_old = m_s[h];
      const float m_new = fmaxf(m_old, tile_max);
      const float pa = lane < tile_n ? expf(a - m_new) : 0.0f;
      const float pb = lane + 32 < tile_n ? expf(b - m_new) : 0.0f;
      s_s[h][lane] = pa;
      s_s[h][lane + 32] = pb;
      const float sum = warp_sum(pa + pb);
      if (lane == 0) {
        const float alpha = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
        alpha_s[h] = alpha;
        l_s[h] = l_s[h] * alpha + sum;
        m_s[h] = m_new;
      }
    }
    __syncthreads();
    // P @ V: threads across Dv, each V row read once for all heads.
#pragma unroll
    for (int h = 0; h < kHeadsPerCta; ++h) {
      const float alpha = alpha_s[h];
#pragma unroll
      for (int c = 0; c < kMaxVPerThread; ++c) acc[h][c] *= alpha;
    }
    for (int jl = 0; jl < tile_n; ++jl) {
      const int64_t j = tile + jl;
      const KV* vrow = vbase + block_ids[jl] * p.v_block + (j % p.block_size) * p.v_slot;
#pragma unroll
      for (int c = 0; c < kMaxVPerThread; ++c) {
        const int d = threadIdx.x + c * kThreads;
        if (d < p.v_head_dim) {
          const float vv = load_f32(vrow + d);
#pragma unroll
          for (int h = 0; h < kHeadsPerCta; ++h) acc[h][c] = fmaf(s_s[h][jl], vv, acc[h][c]);
        }
      }
    }
    __syncthreads();
  }

  const bool single = p.num_partitions <= 1;
#pragma unroll
  for (int h = 0; h < kHeadsPerCta; ++h) {
    if (h >= nh) continue;
    const int64_t qh = h0 + h;
    const float inv_l = 1.0f / l_s[h];
#pragma unroll
    for (int c = 0; c < kMaxVPerThread; ++c) {
      const int d = threadIdx.x + c * kThreads;
      if (d >= p.v_head_dim) continue;
      if (single) {
        p.out[t * p.o_tok + qh * p.o_head + d] = acc[h][c] * inv_l;
      } else {
        const int64_t slot = (t * p.num_q_heads + qh) * p.num_partitions + part;
        part_acc[slot * p.v_head_dim + d] = acc[h][c];
      }
    }
    if (!single && threadIdx.x == 0) {
      const int64_t slot = (t * p.num_q_heads + qh) * p.num_partitions + part;
      part_ml[2 * slot] = m_s[h];
      part_ml[2 * slot + 1] = l_s[h];
    }
  }
}

// Merges the partitions of one (token, query head): out = sum_p acc_p e^(m_p - M) / L.
__global__ void __launch_bounds__(kThreads)
    reduce_partitions_kernel(PagedAttentionParams p, const float* part_ml, const float* part_acc,
                             int flash_run) {
  const int64_t t = blockIdx.x;
  if (flash_run > 0) {
    const int s = find_seq(p.query_start, p.num_seqs, t);
    if (flash::flash_owns(p.query_start[s + 1] - p.query_start[s], flash_run)) return;
  }
  const int64_t qh = blockIdx.y;
  const int64_t num_keys = num_keys_of(p, t);
  const int used = static_cast<int>((num_keys + p.partition_keys - 1) / p.partition_keys);
  const int64_t base = (t * p.num_q_heads + qh) * p.num_partitions;
  float m = -INFINITY;
  for (int i = 0; i < used; ++i) m = fmaxf(m, part_ml[2 * (base + i)]);
  float l = 0.0f;
  for (int i = 0; i < used; ++i)
    l += part_ml[2 * (base + i) + 1] * expf(part_ml[2 * (base + i)] - m);
  for (int64_t d = threadIdx.x; d < p.v_head_dim; d += blockDim.x) {
    float o = 0.0f;
    for (int i = 0; i < used; ++i) {
      o += part_acc[(base + i) * p.v_head_dim + d] * expf(part_ml[2 * (base + i)] - m);
    }
    p.out[t * p.o_tok + qh * p.o_head + d] = o / l;
  }
}

template <typename T>
__global__ void kv_append_kernel(KvAppendParams p) {
  const int64_t t = blockIdx.x;
  const int32_t slot = p.slot_mapping[t];
  if (slot < 0) return;
  const int64_t block = slot / p.block_size;
  const int64_t offset = slot % p.block_size;
  T* kc = static_cast<T*>(p.k_cache) + block * p.kc_block + offset * p.kc_slot;
  for (int64_t i = threadIdx.x; i < p.num_kv_heads * p.head_dim; i += blockDim.x) {
    const int64_t h = i / p.head_dim, d = i % p.head_dim;
    store_f32(kc + h * p.kc_head + d, p.k[t * p.k_tok + h * p.k_head + d]);
  }
  __syncthreads();  // NOTE: an aliased (MLA) V must land after K, as in the reference
  T* vc = static_cast<T*>(p.v_cache) + block * p.vc_block + offset * p.vc_slot;
  for (int64_t i = threadIdx.x; i < p.num_kv_heads * p.v_head_dim; i += blockDim.x) {
    const int64_t h = i / p.v_head_dim, d = i % p.v_head_dim;
    store_f32(vc + h * p.vc_head + d, p.v[t * p.v_tok + h * p.v_head + d]);
  }
}

}  // namespace

int64_t paged_attention_workspace_bytes(int64_t num_tokens, int64_t num_q_heads, int64_t v_head_dim,
                                        int num_partitions) {
  if (num_partitions <= 1) return 0;
  return num_tokens * num_q_heads * num_partitions * (v_head_dim + 2) *
         static_cast<int64_t>(sizeof(float));
}

void choose_paged_attention_split(PagedAttentionParams& p, int64_t max_seq_len, int num_sms,
                                  int64_t max_workspace_bytes) {
  const int64_t group = p.num_q_heads / p.num_kv_heads;
  int64_t parts = 1;
  if (mla_decode_supported(p)) {
    const int64_t ctas =
        p.num_tokens * mla::head_blocks(p.num_q_heads, mla::m_tiles(p.num_q_heads));
    parts = mla::choose_partitions(ctas, num_sms, max_seq_len);
  } else {
    const int64_t ctas =
        p.num_tokens * p.num_kv_heads * ((group + kHeadsPerCta - 1) / kHeadsPerCta);
    // Enough CTAs for ~4 per SM, but no partition shorter than 512 keys.
    parts = (4LL * num_sms + ctas - 1) / (ctas > 0 ? ctas : 1);
    const int64_t max_parts = (max_seq_len + 511) / 512;
    if (parts > max_parts) parts = max_parts;
  }
  while (parts > 1 &&
         paged_attention_workspace_bytes(p.num_tokens, p.num_q_heads, p.v_head_dim,
                                         static_cast<int>(parts)) > max_workspace_bytes) {
    parts /= 2;
  }
  if (parts <= 1) {
    p.num_partitions = 1;
    p.partition_keys = 0;
    return;
  }
  int64_t keys = (max_seq_len + parts - 1) / parts;
  keys = (keys + kKeyTile - 1) / kKeyTile * kKeyTile;
  p.partition_keys = static_cast<int>(keys);
  p.num_partitions = static_cast<int>((max_seq_len + keys - 1) / keys);
}

cudaError_t paged_attention(const PagedAttentionParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  if (p.head_dim > kMaxHeadDim || p.v_head_dim > kThreads * kMaxVPerThread ||
      p.num_partitions > 65535 || p.num_q_heads % p.num_kv_heads != 0) {
    return cudaErrorInvalidValue;
  }
  if (p.num_partitions > 1 &&
      (p.partition_keys <= 0 || p.partition_keys % kKeyTile != 0 || p.workspace == nullptr)) {
    return cudaErrorInvalidValue;
  }
  float* part_ml = static_cast<float*>(p.workspace);
  float* part_acc =
      part_ml ? part_ml + 2 * p.num_tokens * p.num_q_heads * p.num_partitions : nullptr;
  if (mla_decode_supported(p)) {
    cudaError_t err = mla_decode(p, part_ml, part_acc, stream);
    if (err != cudaSuccess || p.num_partitions <= 1) return err;
    const dim3 rgrid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(p.num_q_heads));
    reduce_partitions_kernel<<<rgrid, kThreads, 0, stream>>>(p, part_ml, part_acc, 0);
    return cudaGetLastError();
  }
  const int64_t group = p.num_q_heads / p.num_kv_heads;
  const int64_t chunks = (group + kHeadsPerCta - 1) / kHeadsPerCta;
  const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(p.num_partitions),
                  static_cast<unsigned>(p.num_kv_heads * chunks));
  const bool flash = flash_prefill_supported(p);
  const int flash_run = flash ? flash::kMinRun : 0;
  switch (p.kv_type) {
    case ElemType::kF32:
      paged_attention_kernel<float><<<grid, kThreads, 0, stream>>>(p, part_ml, part_acc, flash_run);
      break;
    case ElemType::kF16:
      paged_attention_kernel<__half>
          <<<grid, kThreads, 0, stream>>>(p, part_ml, part_acc, flash_run);
      break;
    case ElemType::kBF16:
      paged_attention_kernel<__nv_bfloat16>
          <<<grid, kThreads, 0, stream>>>(p, part_ml, part_acc, flash_run);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  if (p.num_partitions > 1) {
    const dim3 rgrid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(p.num_q_heads));
    reduce_partitions_kernel<<<rgrid, kThreads, 0, stream>>>(p, part_ml, part_acc, flash_run);
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return flash ? flash_prefill(p, stream) : cudaSuccess;
}

cudaError_t kv_append(const KvAppendParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  const unsigned grid = static_cast<unsigned>(p.num_tokens);
  switch (p.cache_type) {
    case ElemType::kF32:
      kv_append_kernel<float><<<grid, kThreads, 0, stream>>>(p);
      break;
    case ElemType::kF16:
      kv_append_kernel<__half><<<grid, kThreads, 0, stream>>>(p);
      break;
    case ElemType::kBF16:
      kv_append_kernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(p);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda

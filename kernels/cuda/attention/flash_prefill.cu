// Flash-style prefill over the paged KV cache (f16/bf16 caches, head dim 64 or 128, Dv == D).
// One CTA (4 warps) per (query tile, KV head, chunk of hc heads of its GQA group): its 64 rows
// are 64/hc tokens x hc heads, so each K/V tile (64 keys, cp.async double buffered from the block
// table) serves every head of the chunk. Q is rounded f32 -> f16/bf16 into shared memory; S =
// Q K^T and O += P V run on mma.sync m16n8k16 with f32 accumulators and an online softmax
// (exp2, scale folded in). Q and P are split into hi + lo halves (two mma each) so results keep
// f32-level accuracy (the registry's 1e-7 NMSE): K and V are exact in the cache type. Slot/tile
// mapping, causal limits and addressing: flash_tile_logic.h.
// Invariant: keys at or past a row's limit are masked to -inf and never loaded (zero-filled), so
// uninitialised cache slots cannot leak NaN; rows past a sequence's queries are never written.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "kernels/cuda/attention/flash_tile_logic.h"
#include "kernels/cuda/attention/paged_attention.h"
#include "kernels/cuda/common/device_attr.h"
#include "kernels/cuda/common/mma.cuh"

namespace tessera::kernels::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kRows = flash::kRows;
constexpr int kKeys = flash::kKeyTile;

template <int D>
struct Smem {
  static constexpr int kPitch = D + 8;  // elements; 16 B pad keeps ldmatrix rows conflict-free
  static constexpr int kTile = kRows * kPitch * 2;      // bytes of one 64-row tile
  static constexpr int kBytes = 6 * kTile + kRows * 4;  // Q hi, Q lo, K x2, V x2, row limits
};

// K and V rows [kt0, kt0 + 64) of KV head `kvh` into shared tiles; keys >= kv_end zero-filled.
template <typename T, int D>
__device__ __forceinline__ void load_kv(const PagedAttentionParams& p, const int32_t* table,
                                        int64_t kvh, int64_t kt0, int64_t kv_end, T* ks, T* vs) {
  constexpr int kChunks = D / 8;  // 16 B per chunk
  const T* kb = static_cast<const T*>(p.k) + kvh * p.k_head;
  const T* vb = static_cast<const T*>(p.v) + kvh * p.v_head;
  for (int c = threadIdx.x; c < kKeys * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const int64_t j = kt0 + r;
    const bool ok = j < kv_end;
    const T* ksrc = kb;
    const T* vsrc = vb;
    if (ok) {
      int64_t blk, slot;
      flash::key_block_slot(table, j, p.block_size, &blk, &slot);
      ksrc = kb + blk * p.k_block + slot * p.k_slot + col;
      vsrc = vb + blk * p.v_block + slot * p.v_slot + col;
    }
    cp_async16(ks + r * Smem<D>::kPitch + col, ksrc, ok ? 16 : 0);
    cp_async16(vs + r * Smem<D>::kPitch + col, vsrc, ok ? 16 : 0);
  }
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) flash_prefill_kernel(PagedAttentionParams p, int hc) {
  constexpr int P = Smem<D>::kPitch;
  constexpr int kD16 = D / 16, kD8 = D / 8;
  extern __shared__ __align__(16) uint8_t smem[];
  T* qs = reinterpret_cast<T*>(smem);  // hi tile, then the lo tile
  T* kbuf = qs + 2 * kRows * P;        // 2 stages
  T* vbuf = kbuf + 2 * kRows * P;      // 2 stages
  int* limits = reinterpret_cast<int*>(smem + 6 * Smem<D>::kTile);

  const int T_tok = flash::tokens_per_cta(hc);
  int64_t s, tile;
  if (!flash::find_tile(p.query_start, p.num_seqs, T_tok, flash::kMinRun, blockIdx.x, &s, &tile)) {
    return;
  }
  const int64_t group = p.num_q_heads / p.num_kv_heads;
  const int64_t chunks = group / hc;
  const int64_t kvh = blockIdx.y / chunks;
  const int64_t h0 = kvh * group + (blockIdx.y % chunks) * hc;
  const int64_t q0 = p.query_start[s];
  const int64_t n = p.query_start[s + 1] - q0;
  const int64_t i0 = tile * T_tok;  // first query (within the sequence) of this tile
  const int32_t* table = p.block_tables + s * p.bt_stride;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  for (int r = threadIdx.x; r < kRows; r += kThreads) {
    const int64_t i = i0 + r / hc;
    int64_t lim = 0;
    if (i < n) lim = p.positions ? p.positions[q0 + i] + 1 : flash::key_limit(p.seq_lens[s], n, i);
    limits[r] = static_cast<int>(lim);
  }
  // Q = hi + lo, both in T: hi.K + lo.K keeps f32-level accuracy (K and V are exact in T).
  for (int e = threadIdx.x; e < kRows * D; e += kThreads) {
    const int r = e / D, d = e % D;
    const int64_t i = i0 + r / hc;
    const float v = i < n ? p.q[(q0 + i) * p.q_tok + (h0 + r % hc) * p.q_head + d] : 0.0f;
    const T hi = from_f32<T>(v);
    qs[r * P + d] = hi;
    qs[(kRows + r) * P + d] = from_f32<T>(v - to_f32(hi));
  }
  __syncthreads();
  int kv_end = 0, warp_end = 0;
  for (int r = 0; r < kRows; ++r) {
    kv_end = max(kv_end, limits[r]);
    if (r / 16 == warp) warp_end = max(warp_end, limits[r]);
  }
  const int row_g = warp * 16 + (lane >> 2);
  const int lim0 = limits[row_g], lim1 = limits[row_g + 8];

  float o[kD8][4];
#pragma unroll
  for (int j = 0; j < kD8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[j][e] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  const float scale_log2 = p.scale * 1.4426950408889634f;

  const int num_tiles = (kv_end + kKeys - 1) / kKeys;
  if (num_tiles > 0) load_kv<T, D>(p, table, kvh, 0, kv_end, kbuf, vbuf);
  asm volatile("cp.async.commit_group;\n");
  for (int kt = 0; kt < num_tiles; ++kt) {
    const int buf = kt & 1;
    if (kt + 1 < num_tiles) {
      load_kv<T, D>(p, table, kvh, static_cast<int64_t>(kt + 1) * kKeys, kv_end,
                    kbuf + (buf ^ 1) * kRows * P, vbuf + (buf ^ 1) * kRows * P);
    }
    asm volatile("cp.async.commit_group;\n");
    asm volatile("cp.async.wait_group 1;\n");
    __syncthreads();
    const int kt0 = kt * kKeys;
    if (kt0 < warp_end) {  // warp-uniform: causal tiles past every row of this warp are skipped
      const T* ks = kbuf + buf * kRows * P;
      const T* vs = vbuf + buf * kRows * P;
      float sc[kKeys / 8][4];
#pragma unroll
      for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) sc[j][e] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < kD16; ++kk) {
        uint32_t qh[4], ql[4];
        const int qr = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        ldsm_x4(qh, qs + qr * P + kk * 16 + (lane >> 4) * 8);
        ldsm_x4(ql, qs + (kRows + qr) * P + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int j = 0; j < kKeys / 8; j += 2) {
          uint32_t b[4];
          ldsm_x4(
              b, ks + (j * 8 + (lane & 7) + (lane >> 4) * 8) * P + kk * 16 + ((lane >> 3) & 1) * 8);
          mma16816<T>(sc[j], qh, b[0], b[1]);
          mma16816<T>(sc[j + 1], qh, b[2], b[3]);
          mma16816<T>(sc[j], ql, b[0], b[1]);
          mma16816<T>(sc[j + 1], ql, b[2], b[3]);
        }
      }
      // Mask, online softmax (rows row_g and row_g + 8; a row's values sit in one lane quad).
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = kt0 + j * 8 + (lane & 3) * 2 + (e & 1);
          const float v = key < (e < 2 ? lim0 : lim1) ? sc[j][e] * scale_log2 : -INFINITY;
          sc[j][e] = v;
          mx[e >> 1] = fmaxf(mx[e >> 1], v);
        }
      float base[2], alpha[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
        const float m_new = fmaxf(m_run[h], mx[h]);
        base[h] = m_new == -INFINITY ? 0.0f : m_new;
        alpha[h] = exp2f(m_run[h] - base[h]);  // 0 while the row has seen no key
        m_run[h] = m_new;
        l_run[h] *= alpha[h];
      }
#pragma unroll
      for (int j = 0; j < kD8; ++j) {
        o[j][0] *= alpha[0];
        o[j][1] *= alpha[0];
        o[j][2] *= alpha[1];
        o[j][3] *= alpha[1];
      }
#pragma unroll
      for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float pv = exp2f(sc[j][e] - base[e >> 1]);
          sc[j][e] = pv;
          l_run[e >> 1] += pv;
        }
        // O += P V: P's accumulator layout is the A fragment of m16n8k16 (16 keys per step).
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        uint32_t a[4], al[4];  // P = hi + lo as for Q
        split2<T>(sc[2 * kk][0], sc[2 * kk][1], a[0], al[0]);
        split2<T>(sc[2 * kk][2], sc[2 * kk][3], a[1], al[1]);
        split2<T>(sc[2 * kk + 1][0], sc[2 * kk + 1][1], a[2], al[2]);
        split2<T>(sc[2 * kk + 1][2], sc[2 * kk + 1][3], a[3], al[3]);
#pragma unroll
        for (int j = 0; j < kD8; j += 2) {
          uint32_t b[4];
          ldsm_x4_t(
              b, vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * P + j * 8 + (lane >> 4) * 8);
          mma16816<T>(o[j], a, b[0], b[1]);
          mma16816<T>(o[j + 1], a, b[2], b[3]);
          mma16816<T>(o[j], al, b[0], b[1]);
          mma16816<T>(o[j + 1], al, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // the next prefetch overwrites this stage
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l_run[h] += __shfl_xor_sync(0xffffffffu, l_run[h], 1);
    l_run[h] += __shfl_xor_sync(0xffffffffu, l_run[h], 2);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = row_g + h * 8;
    const int64_t i = i0 + r / hc;
    if (i >= n || l_run[h] <= 0.0f) continue;
    const float inv = 1.0f / l_run[h];
    float* orow = p.out + (q0 + i) * p.o_tok + (h0 + r % hc) * p.o_head;
#pragma unroll
    for (int j = 0; j < kD8; ++j) {
      const int d = j * 8 + (lane & 3) * 2;
      orow[d] = o[j][2 * h] * inv;
      orow[d + 1] = o[j][2 * h + 1] * inv;
    }
  }
}

template <typename T, int D>
cudaError_t launch(const PagedAttentionParams& p, int hc, cudaStream_t stream) {
  auto* kernel = flash_prefill_kernel<T, D>;
  cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Smem<D>::kBytes);
  if (err != cudaSuccess) return err;
  const int64_t slots = flash::num_slots(p.num_tokens, p.num_seqs, flash::tokens_per_cta(hc));
  const int64_t group = p.num_q_heads / p.num_kv_heads;
  const dim3 grid(static_cast<unsigned>(slots),
                  static_cast<unsigned>(p.num_kv_heads * (group / hc)));
  kernel<<<grid, kThreads, Smem<D>::kBytes, stream>>>(p, hc);
  return cudaGetLastError();
}

bool aligned16(const void* ptr, int64_t a, int64_t b, int64_t c) {
  return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0 && a % 8 == 0 && b % 8 == 0 && c % 8 == 0;
}

}  // namespace

bool flash_prefill_supported(const PagedAttentionParams& p) {
  if (!p.allow_flash) return false;
  if (p.kv_type != ElemType::kF16 && p.kv_type != ElemType::kBF16) return false;
  if (p.head_dim != p.v_head_dim || (p.head_dim != 64 && p.head_dim != 128)) return false;
  if (p.k == p.v || p.num_kv_heads <= 0 || p.num_q_heads % p.num_kv_heads != 0) return false;
  const int hc = flash::heads_per_cta(p.num_q_heads / p.num_kv_heads);
  if (p.num_kv_heads * (p.num_q_heads / p.num_kv_heads / hc) > 65535) return false;
  if (!aligned16(p.k, p.k_block, p.k_slot, p.k_head) ||
      !aligned16(p.v, p.v_block, p.v_slot, p.v_head)) {
    return false;
  }
  // D = 128 needs ~102 KiB of shared memory: sm_86 / sm_89 parts (99 KiB) keep the split-K path.
  const int optin = current_device_attribute<cudaDevAttrMaxSharedMemoryPerBlockOptin>();
  return optin >= (p.head_dim == 64 ? Smem<64>::kBytes : Smem<128>::kBytes);
}

cudaError_t flash_prefill(const PagedAttentionParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  if (!flash_prefill_supported(p)) return cudaErrorInvalidValue;
  const int hc = flash::heads_per_cta(p.num_q_heads / p.num_kv_heads);
  const bool half = p.kv_type == ElemType::kF16;
  if (p.head_dim == 64) {
    return half ? launch<__half, 64>(p, hc, stream) : launch<__nv_bfloat16, 64>(p, hc, stream);
  }
  return half ? launch<__half, 128>(p, hc, stream) : launch<__nv_bfloat16, 128>(p, hc, stream);
}

}  // namespace tessera::kernels::cuda

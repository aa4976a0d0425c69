// MLA decode attention benchmark on DeepSeek-V3 shapes (H 128, latent D 576, Dv 512, bf16
// cache, block 16): the dedicated MLA kernel (mla_decode.cu) vs the generic split-K kernel
// (PagedAttentionParams::allow_mla = false), contexts 4K / 32K, batch 1 / 16 / 64 decode tokens.
// Floor: latent bytes / HBM bandwidth measured by a copy kernel; also TFLOP/s (H (D + Dv) 2 flops
// per key and token) and the NMSE between the two paths. `--probe` only says whether a GPU answers.
// Invariant: inputs are random (never zeros) and every timed launch is checked for errors.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench/cuda_bench_util.cuh"
#include "kernels/cuda/attention/paged_attention.h"

namespace kc = tessera::kernels::cuda;
using tessera::kernels::ElemType;

namespace {

__device__ uint32_t mix(uint64_t i, uint32_t seed) {
  uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed ^ static_cast<uint32_t>(i >> 32);
  h ^= h >> 13;
  h *= 0x5bd1e995u;
  return h ^ (h >> 15);
}

// bf16 values in +-[0.25, 1).
__global__ void fill_bf16(uint16_t* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const uint32_t h = mix(i, seed);
    p[i] = static_cast<uint16_t>(0x3e80 | (h & 0x7f) | (h & 0x8000));
  }
}

// f32 values in [-1, 1).
__global__ void fill_f32(float* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    p[i] = static_cast<float>(mix(i, seed) >> 8) * (2.0f / 16777216.0f) - 1.0f;
  }
}

}  // namespace

int main(int argc, char** argv) {
  cudaDeviceProp prop{};
  const int rc = tessera::bench::open_device(argc, argv, &prop);
  if (rc >= 0) return rc;
  const bool skip_generic = argc > 1 && std::strcmp(argv[1], "--mla-only") == 0;

  const double hbm = tessera::bench::measure_hbm_gbs(prop.multiProcessorCount);  // GB/s
  std::printf("HBM copy: %.0f GB/s\n\n", hbm);

  const int64_t H = 128, D = 576, Dv = 512, bs = 16;
  const int64_t max_batch = 64, max_ctx = 32768;
  const int64_t blocks_per_seq = max_ctx / bs, num_blocks = max_batch * blocks_per_seq;
  void* cache = tessera::bench::dalloc(num_blocks * bs * D * 2);
  fill_bf16<<<4096, 256>>>(static_cast<uint16_t*>(cache), num_blocks * bs * D, 2);
  float* q = static_cast<float*>(tessera::bench::dalloc(max_batch * H * D * 4));
  fill_f32<<<1024, 256>>>(q, max_batch * H * D, 3);
  float* out_mla = static_cast<float*>(tessera::bench::dalloc(max_batch * H * Dv * 4));
  float* out_gen = static_cast<float*>(tessera::bench::dalloc(max_batch * H * Dv * 4));
  std::vector<int32_t> table(num_blocks);
  for (int64_t i = 0; i < num_blocks; ++i) table[i] = int32_t((i * 7919) % num_blocks);
  int32_t* dtable = tessera::bench::upload(table);
  int32_t* dqs = static_cast<int32_t*>(tessera::bench::dalloc((max_batch + 1) * 4));
  int32_t* dlens = static_cast<int32_t*>(tessera::bench::dalloc(max_batch * 4));
  const int64_t max_ws = 1ll << 30;
  void* ws = tessera::bench::dalloc(max_ws);

  std::printf("%-24s %10s %9s %8s %8s %10s %9s %9s\n", "shape (bf16 latent)", "mla ms", "GB/s",
              "HBM %", "TFLOP/s", "generic ms", "speedup", "NMSE");
  for (int64_t ctx : {4096, 32768}) {
    for (int64_t batch : {1, 16, 64}) {
      std::vector<int32_t> qs(batch + 1), lens(batch, static_cast<int32_t>(ctx));
      for (int64_t s = 0; s <= batch; ++s) qs[s] = static_cast<int32_t>(s);
      TB_CHECK_CUDA(cudaMemcpy(dqs, qs.data(), qs.size() * 4, cudaMemcpyHostToDevice));
      TB_CHECK_CUDA(cudaMemcpy(dlens, lens.data(), lens.size() * 4, cudaMemcpyHostToDevice));
      kc::PagedAttentionParams p{};
      p.q = q;
      p.q_tok = H * D;
      p.q_head = D;
      p.k = p.v = cache;
      p.k_block = p.v_block = bs * D;
      p.k_slot = p.v_slot = D;
      p.k_head = p.v_head = D;
      p.kv_type = ElemType::kBF16;
      p.o_tok = H * Dv;
      p.o_head = Dv;
      p.num_tokens = batch;
      p.num_seqs = batch;
      p.num_q_heads = H;
      p.num_kv_heads = 1;
      p.head_dim = D;
      p.v_head_dim = Dv;
      p.block_size = bs;
      p.query_start = dqs;
      p.seq_lens = dlens;
      p.block_tables = dtable;
      p.bt_stride = blocks_per_seq;
      p.scale = 0.0722f;
      p.workspace = ws;
      const double bytes = double(batch) * ctx * D * 2;
      const double flop = 2.0 * batch * ctx * H * (D + Dv);
      const int iters = ctx * batch >= 32768 * 16 ? 3 : 10;

      kc::PagedAttentionParams pm = p;
      pm.out = out_mla;
      const bool mla = kc::mla_decode_supported(pm);
      kc::choose_paged_attention_split(pm, ctx, prop.multiProcessorCount, max_ws);
      const double mla_ms =
          tessera::bench::time_ms([&] { return kc::paged_attention(pm, nullptr); }, iters);

      double gen_ms = 0, err = 0;
      if (!skip_generic) {
        kc::PagedAttentionParams pg = p;
        pg.out = out_gen;
        pg.allow_mla = false;
        kc::choose_paged_attention_split(pg, ctx, prop.multiProcessorCount, max_ws);
        gen_ms = tessera::bench::time_ms([&] { return kc::paged_attention(pg, nullptr); }, iters);
        TB_CHECK_CUDA(cudaDeviceSynchronize());
        err = tessera::bench::nmse_dev(out_gen, out_mla, batch * H * Dv);
      }
      char name[64];
      std::snprintf(name, sizeof(name), "ctx %lldK batch %lld%s", (long long)(ctx / 1024),
                    (long long)batch, mla ? "" : " (no mla!)");
      std::printf("%-24s %10.3f %9.0f %7.1f%% %8.1f %10.3f %8.2fx %9.1e  parts %d\n", name, mla_ms,
                  bytes / mla_ms / 1e6, 100.0 * bytes / mla_ms / 1e6 / hbm, flop / mla_ms / 1e9,
                  gen_ms, gen_ms > 0 ? gen_ms / mla_ms : 0.0, err, pm.num_partitions);
    }
  }
  for (void* ptr :
       {cache, static_cast<void*>(q), static_cast<void*>(out_mla), static_cast<void*>(out_gen),
        static_cast<void*>(dtable), static_cast<void*>(dqs), static_cast<void*>(dlens), ws}) {
    cudaFree(ptr);
  }
  return 0;
}

// CUDA kernel benchmarks against their floors: HBM bandwidth measured by a copy kernel, tensor
// peak by a large cuBLASLt bf16 GEMM (FP8 rows: by cuBLASLt's FP8 8192^3). Prints one table: time,
// achieved GB/s or TFLOP/s, the fraction of the floor, and the issue's target. `--probe` only says
// whether a GPU answers. Invariant: inputs are random (never zeros) and every timed kernel is
// checked for errors.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "bench/cuda_bench_util.cuh"
#include "kernels/cuda/attention/paged_attention.h"
#include "kernels/cuda/elementwise/elementwise.h"
#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemm_gguf.h"
#include "kernels/cuda/norm/rms_norm.h"

namespace kc = tessera::kernels::cuda;
using tessera::kernels::ElemType;

namespace {

__global__ void fill_kernel(uint16_t* p, int64_t n, uint32_t seed, bool fp8) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    // bf16 in [0.25, 1) with a random sign; for fp8 two e4m3 bytes in [0.25, 1).
    p[i] = fp8 ? uint16_t(0x3030 | (h & 0x0707) | (h & 0x8080))
               : uint16_t(0x3e80 | (h & 0x7f) | (h & 0x8000));
  }
}

void fill(void* p, int64_t bytes, uint32_t seed, bool fp8 = false) {
  fill_kernel<<<1024, 256>>>(static_cast<uint16_t*>(p), bytes / 2, seed, fp8);
  TB_CHECK_CUDA(cudaGetLastError());
}

struct Row {
  std::string name;
  double ms;
  double achieved;  // GB/s or TFLOP/s
  const char* unit;
  double floor;  // the same unit
  std::string target;
};

kc::RowLayout rows2(int64_t r, int64_t c) {
  kc::RowLayout l;
  l.outer_ndim = 1;
  l.shape[0] = r;
  l.stride[0] = c;
  l.num_rows = r;
  l.row_elems = c;
  return l;
}

// Paged attention over an f16 GQA cache [blocks, bs, hkv, d] (K and V separate); q and o
// f32 [tokens, hq, d]; query_start / seq_lens / block tables on the device.
kc::PagedAttentionParams gqa_f16_params(const float* q, const void* k, const void* v, float* o,
                                        int64_t hq, int64_t hkv, int64_t d, int64_t bs,
                                        int64_t tokens, int64_t seqs, const int32_t* query_start,
                                        const int32_t* seq_lens, const int32_t* block_tables,
                                        int64_t bt_stride) {
  kc::PagedAttentionParams p{};
  p.q = q;
  p.q_tok = hq * d;
  p.q_head = d;
  p.k = k;
  p.v = v;
  p.k_block = p.v_block = bs * hkv * d;
  p.k_slot = p.v_slot = hkv * d;
  p.k_head = p.v_head = d;
  p.kv_type = ElemType::kF16;
  p.out = o;
  p.o_tok = hq * d;
  p.o_head = d;
  p.num_tokens = tokens;
  p.num_seqs = seqs;
  p.num_q_heads = hq;
  p.num_kv_heads = hkv;
  p.head_dim = d;
  p.v_head_dim = d;
  p.block_size = bs;
  p.query_start = query_start;
  p.seq_lens = seq_lens;
  p.block_tables = block_tables;
  p.bt_stride = bt_stride;
  p.scale = 0.088f;
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  cudaDeviceProp prop{};
  if (const int rc = tessera::bench::open_device(argc, argv, &prop); rc >= 0) return rc;
  std::vector<Row> rows;

  // 1. HBM bandwidth floor: a 2 x 1 GiB copy.
  const double hbm = tessera::bench::measure_hbm_gbs(prop.multiProcessorCount);  // GB/s
  rows.push_back({"copy 1 GiB (HBM floor)", 2.0 * (1ll << 30) / hbm / 1e6, hbm, "GB/s", hbm, "-"});

  // 2. Tensor peak: cuBLASLt bf16 8192^3.
  kc::LtContext* lt = nullptr;
  TB_CHECK_CUDA(kc::lt_create(&lt, 64ll << 20));
  const int64_t G = 8192;
  void* ga = tessera::bench::dalloc(G * G * 2);
  void* gb = tessera::bench::dalloc(G * G * 2);
  float* gc = static_cast<float*>(tessera::bench::dalloc(G * G * 4));
  fill(ga, G * G * 2, 2);
  fill(gb, G * G * 2, 3);
  const double gemm_ms = tessera::bench::time_ms(
      [&] { return kc::lt_gemm(lt, ElemType::kBF16, ga, G, gb, G, gc, G, G, G, G, nullptr); }, 10);
  const double peak = 2.0 * G * G * G / gemm_ms / 1e9;  // TFLOP/s
  rows.push_back({"cuBLASLt bf16 8192^3 (peak)", gemm_ms, peak, "TFLOP/s", peak, "-"});
  // Our bf16 GEMM is the cuBLASLt path itself; a decode-shaped one shows the small-M regime.
  const double gemv_ms = tessera::bench::time_ms(
      [&] { return kc::lt_gemm(lt, ElemType::kBF16, ga, G, gb, G, gc, G, 16, G, G, nullptr); });
  rows.push_back({"bf16 gemm M=16 N=K=8192", gemv_ms, G * G * 2.0 / gemv_ms / 1e6, "GB/s", hbm,
                  ">= 0.95x cuBLAS (it is cuBLASLt)"});

  // 3. FP8: cuBLASLt per-tensor baseline and the block-scaled kernel, 8192^3.
  float* scales = static_cast<float*>(tessera::bench::dalloc(G * (G / 128) * 4));
  {
    std::vector<float> ones(G * (G / 128), 1.0f);
    TB_CHECK_CUDA(cudaMemcpy(scales, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
  }
  fill(ga, G * G, 4, true);
  fill(gb, G * G, 5, true);
  cudaError_t fp8_err =
      kc::lt_gemm_fp8(lt, static_cast<uint8_t*>(ga), G, scales, static_cast<uint8_t*>(gb), G,
                      scales, gc, G, G, G, G, nullptr);
  if (fp8_err == cudaSuccess) {
    const double ms = tessera::bench::time_ms(
        [&] {
          return kc::lt_gemm_fp8(lt, static_cast<uint8_t*>(ga), G, scales,
                                 static_cast<uint8_t*>(gb), G, scales, gc, G, G, G, G, nullptr);
        },
        10);
    rows.push_back({"cuBLASLt fp8 per-tensor 8192^3", ms, 2.0 * G * G * G / ms / 1e9, "TFLOP/s",
                    peak, "baseline"});
  } else {
    std::printf("cuBLASLt fp8: %s\n", cudaGetErrorString(fp8_err));
  }
  cudaFree(ga);
  cudaFree(gb);
  cudaFree(gc);
  cudaFree(scales);
  // Block-scaled FP8 (DeepSeek-V3): our mma.sync kernel vs the CUDA-core one and cuBLASLt's
  // per-tensor FP8 on the same shape; x is pre-quantised (its kernel is its own row).
  {
    double fp8_peak = peak;
    for (const Row& r : rows) {
      if (r.name.rfind("cuBLASLt fp8", 0) == 0) fp8_peak = r.achieved;
    }
    const int64_t maxM = 4096, maxK = 18432, maxN = 24576;
    float* x = static_cast<float*>(tessera::bench::dalloc(maxM * maxK * 4));
    uint8_t* xq = static_cast<uint8_t*>(tessera::bench::dalloc(maxM * maxK));
    uint8_t* xq_lo = static_cast<uint8_t*>(tessera::bench::dalloc(16 * maxK));
    float* xs = static_cast<float*>(tessera::bench::dalloc(maxM * (maxK / 128) * 4));
    uint8_t* w = static_cast<uint8_t*>(tessera::bench::dalloc(maxN * 7168));
    float* ws = static_cast<float*>(tessera::bench::dalloc((maxN / 128) * (maxK / 128) * 4));
    float* out = static_cast<float*>(tessera::bench::dalloc(maxM * maxN * 4));
    float* out2 =
        static_cast<float*>(tessera::bench::dalloc(maxM * maxN * 4));  // the CUDA-core cross-check
    fill(x, maxM * maxK * 4, 8);
    fill(w, maxN * 7168, 9, true);
    {
      std::vector<float> v((maxN / 128) * (maxK / 128), 0.01f);
      TB_CHECK_CUDA(cudaMemcpy(ws, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
    }
    const int sms = prop.multiProcessorCount;
    void* split_ws = tessera::bench::dalloc(256ll << 20);
    const double q_ms = tessera::bench::time_ms([&] {
      return kc::quantize_fp8_rows(x, 7168, 4096, 7168, xq, nullptr, 7168, xs, 56, nullptr);
    });
    rows.push_back(
        {"fp8 quantise x 4096x7168", q_ms, 4096 * 7168 * 5.0 / q_ms / 1e6, "GB/s", hbm, "-"});
    auto bench = [&](const std::string& name, int64_t M, int64_t N, int64_t K, bool cuda_core) {
      if (N * K > maxN * 7168) return;  // NOTE: weight buffer sized for the listed shapes
      TB_CHECK_CUDA(kc::quantize_fp8_rows(x, K, M, K, xq, M <= 16 ? xq_lo : nullptr, K, xs, K / 128,
                                          nullptr));
      kc::Fp8BlockGemm g{
          xq, K, M <= 16 ? xq_lo : nullptr, xs, K / 128, w, K, ws, K / 128, out, N, M, N, K};
      const double flop = 2.0 * M * N * K;
      double lt_ms = -1;
      if (kc::lt_gemm_fp8(lt, xq, K, ws, w, K, ws, out, N, M, N, K, nullptr) == cudaSuccess) {
        lt_ms = tessera::bench::time_ms(
            [&] { return kc::lt_gemm_fp8(lt, xq, K, ws, w, K, ws, out, N, M, N, K, nullptr); }, 10);
      }
      const int64_t need = kc::gemm_fp8_block_workspace_bytes(M, N, K, sms);
      const double ms = tessera::bench::time_ms(
          [&] {
            return kc::gemm_fp8_block_scaled(g, kc::Fp8GemmPath::kAuto, sms,
                                             need <= (256ll << 20) ? split_ws : nullptr, nullptr);
          },
          10);
      // Same math on CUDA cores (its per-group sums in another order): NMSE ~1e-12 expected.
      kc::Fp8BlockGemm g2 = g;
      g2.out = out2;
      TB_CHECK_CUDA(
          kc::gemm_fp8_block_scaled(g2, kc::Fp8GemmPath::kCudaCore, sms, nullptr, nullptr));
      TB_CHECK_CUDA(cudaDeviceSynchronize());
      const double err = tessera::bench::nmse_dev(out2, out, M * N);
      char target[128];
      std::snprintf(target, sizeof(target),
                    "cuBLASLt fp8 %.1f TFLOP/s; weights %.0f GB/s; vs cuda-core NMSE %.1e",
                    lt_ms > 0 ? flop / lt_ms / 1e9 : 0.0, N * K / ms / 1e6, err);
      rows.push_back({"fp8 mma " + name, ms, flop / ms / 1e9, "TFLOP/s", fp8_peak, target});
      if (cuda_core) {
        const double cc = tessera::bench::time_ms(
            [&] {
              return kc::gemm_fp8_block_scaled(g2, kc::Fp8GemmPath::kCudaCore, sms, nullptr,
                                               nullptr);
            },
            2);
        rows.push_back({"fp8 cuda-core " + name, cc, flop / cc / 1e9, "TFLOP/s", fp8_peak,
                        "the sm_80 fallback"});
      }
    };
    bench("4096x7168x7168", 4096, 7168, 7168, true);
    struct Proj {
      const char* name;
      int64_t n, k;
    };
    // DeepSeek-V3 projections (N x K): q_a, kv_a (+rope), q_b, o_proj, MLP down.
    const Proj projs[] = {{"q_a 1536x7168", 1536, 7168},
                          {"kv_a 576x7168", 576, 7168},
                          {"q_b 24576x1536", 24576, 1536},
                          {"o 7168x16384", 7168, 16384},
                          {"down 7168x18432", 7168, 18432}};
    for (const Proj& pr : projs) {
      for (int64_t M : {1, 64, 4096}) {
        bench(std::string(pr.name) + " M=" + std::to_string(M), M, pr.n, pr.k, false);
      }
    }
    // The sm_90a wgmma kernel (opt-in until verified: rows only with TESSERA_FP8_WGMMA=1) vs
    // mma.sync (forced through Fp8GemmPath) and cuBLASLt per-tensor FP8; NMSE wgmma vs mma.sync.
    auto bench_wgmma = [&](const std::string& name, int64_t M, int64_t N, int64_t K) {
      if (N * K > maxN * 7168 || M * K > maxM * maxK || M * N > maxM * maxN) return;
      TB_CHECK_CUDA(kc::quantize_fp8_rows(x, K, M, K, xq, nullptr, K, xs, K / 128, nullptr));
      kc::Fp8BlockGemm g{xq, K, nullptr, xs, K / 128, w, K, ws, K / 128, out, N, M, N, K};
      const cudaError_t first =
          kc::gemm_fp8_block_scaled(g, kc::Fp8GemmPath::kWgmma, sms, nullptr, nullptr);
      if (first != cudaSuccess) {
        std::printf("fp8 wgmma %s: %s\n", name.c_str(), cudaGetErrorString(first));
        return;
      }
      const double flop = 2.0 * M * N * K;
      const double ms = tessera::bench::time_ms(
          [&] {
            return kc::gemm_fp8_block_scaled(g, kc::Fp8GemmPath::kWgmma, sms, nullptr, nullptr);
          },
          10);
      double lt_ms = -1;  // cuBLASLt first: out2 ends up holding the mma.sync result
      if (kc::lt_gemm_fp8(lt, xq, K, ws, w, K, ws, out2, N, M, N, K, nullptr) == cudaSuccess) {
        lt_ms = tessera::bench::time_ms(
            [&] { return kc::lt_gemm_fp8(lt, xq, K, ws, w, K, ws, out2, N, M, N, K, nullptr); },
            10);
      }
      kc::Fp8BlockGemm g2 = g;
      g2.out = out2;
      const double mma_ms = tessera::bench::time_ms(
          [&] {
            return kc::gemm_fp8_block_scaled(g2, kc::Fp8GemmPath::kTensorCore, sms, nullptr,
                                             nullptr);
          },
          10);
      TB_CHECK_CUDA(cudaDeviceSynchronize());
      const double err = tessera::bench::nmse_dev(out2, out, M * N);
      char target[160];
      std::snprintf(target, sizeof(target),
                    ">= 1200; mma.sync %.1f, cuBLASLt fp8 %.1f TFLOP/s; vs mma.sync NMSE %.1e",
                    flop / mma_ms / 1e9, lt_ms > 0 ? flop / lt_ms / 1e9 : 0.0, err);
      rows.push_back({"fp8 wgmma " + name, ms, flop / ms / 1e9, "TFLOP/s", fp8_peak, target});
    };
    const char* wgmma_env = std::getenv("TESSERA_FP8_WGMMA");
    if (wgmma_env != nullptr && std::strcmp(wgmma_env, "1") == 0) {
      bench_wgmma("4096x7168x7168", 4096, 7168, 7168);
      bench_wgmma("8192^3", 8192, 8192, 8192);
    } else {
      std::printf("fp8 wgmma rows skipped (opt-in: TESSERA_FP8_WGMMA=1)\n");
    }
    for (void* ptr : {static_cast<void*>(x), static_cast<void*>(xq), static_cast<void*>(xq_lo),
                      static_cast<void*>(xs), static_cast<void*>(w), static_cast<void*>(ws),
                      static_cast<void*>(out), static_cast<void*>(out2), split_ws}) {
      cudaFree(ptr);
    }
  }
  // 3b. GGUF block-quantized matmul (Llama-8B q/o and gate/up shapes, N x K) against the HBM
  // floor of its weight bytes and the f16 cuBLASLt matmul of the dequantised weight it replaces
  // (x rounded to f16 there); NMSE of the block kernels against that f16 path. M = 256 also
  // times what the backend runs there: f16 dequantise + cuBLASLt (docs/ops.md).
  {
    const int64_t maxN = 14336, K = 4096, maxM = 256;
    const int64_t max_w = maxN * K / 32 * 34;  // Q8_0 is the largest per value
    void* w = tessera::bench::dalloc(max_w);
    void* wh = tessera::bench::dalloc(maxN * K * 2);
    float* x = static_cast<float*>(tessera::bench::dalloc(maxM * K * 4));
    void* xh = tessera::bench::dalloc(maxM * K * 2);
    float* out = static_cast<float*>(tessera::bench::dalloc(maxM * maxN * 4));
    float* out_f16 = static_cast<float*>(tessera::bench::dalloc(maxM * maxN * 4));
    fill(w, max_w, 13);  // every 16-bit word is a finite f16 / bf16 in +-[0.25, 2)
    fill(x, maxM * K * 4, 14);
    TB_CHECK_CUDA(kc::convert(x, rows2(maxM, K), ElemType::kF16, xh, rows2(maxM, K), nullptr));
    struct Q {
      const char* name;
      ElemType type;
      int64_t block_elems, block_bytes;
    };
    const Q types[] = {{"q4_1", ElemType::kQ4_1, 32, 20},
                       {"q8_0", ElemType::kQ8_0, 32, 34},
                       {"q4_k", ElemType::kQ4_K, 256, 144},
                       {"q6_k", ElemType::kQ6_K, 256, 210}};
    for (const Q& q : types) {
      for (int64_t N : {int64_t{4096}, maxN}) {
        const int64_t ldw = K / q.block_elems * q.block_bytes, w_bytes = N * ldw;
        TB_CHECK_CUDA(kc::dequantize_gguf_rows(q.type, w, ldw, nullptr, N, K, ElemType::kF16, wh, K,
                                               nullptr));
        for (int64_t M : {int64_t{1}, int64_t{16}, maxM}) {
          const double ms = tessera::bench::time_ms(
              [&] { return kc::gemm_gguf(q.type, x, K, w, ldw, out, N, M, N, K, nullptr); });
          const double f16_ms = tessera::bench::time_ms([&] {
            return kc::lt_gemm(lt, ElemType::kF16, xh, K, wh, K, out_f16, N, M, N, K, nullptr);
          });
          TB_CHECK_CUDA(kc::gemm_gguf(q.type, x, K, w, ldw, out, N, M, N, K, nullptr));
          TB_CHECK_CUDA(cudaDeviceSynchronize());
          const double err = tessera::bench::nmse_dev(out_f16, out, M * N);
          char name[64], target[160];
          std::snprintf(name, sizeof(name), "%s %ldx%ld M=%ld", q.name, long(N), long(K), long(M));
          std::snprintf(target, sizeof(target), "floor %.4f ms; f16 cuBLASLt %.4f ms; NMSE %.1e",
                        w_bytes / hbm / 1e6, f16_ms, err);
          rows.push_back({name, ms, w_bytes / ms / 1e6, "GB/s", hbm, target});
          if (M == maxM) {
            const double slab_ms = tessera::bench::time_ms([&] {
              TB_CHECK_CUDA(kc::dequantize_gguf_rows(q.type, w, ldw, nullptr, N, K, ElemType::kF16,
                                                     wh, K, nullptr));
              return kc::lt_gemm(lt, ElemType::kF16, xh, K, wh, K, out, N, M, N, K, nullptr);
            });
            std::snprintf(name, sizeof(name), "%s %ldx%ld M=%ld dq+Lt", q.name, long(N), long(K),
                          long(M));
            rows.push_back({name, slab_ms, 2.0 * M * N * K / slab_ms / 1e9, "TFLOP/s", peak,
                            "the backend's prefill path (f16 dequantise + cuBLASLt)"});
          }
        }
      }
    }
    for (void* ptr :
         {w, wh, static_cast<void*>(x), xh, static_cast<void*>(out), static_cast<void*>(out_f16)}) {
      cudaFree(ptr);
    }
  }
  kc::lt_destroy(lt);

  // 4. Paged decode attention, 32K context: 8 seqs, Hq 32, Hkv 8, D 128, f16 KV, block 16.
  {
    const int64_t seqs = 8, hq = 32, hkv = 8, d = 128, bs = 16, ctx = 32768;
    const int64_t blocks_per_seq = ctx / bs, num_blocks = seqs * blocks_per_seq;
    const int64_t kv_bytes = num_blocks * bs * hkv * d * 2;
    void* k = tessera::bench::dalloc(kv_bytes);
    void* v = tessera::bench::dalloc(kv_bytes);
    fill(k, kv_bytes, 6);
    fill(v, kv_bytes, 7);
    float* q = static_cast<float*>(tessera::bench::dalloc(seqs * hq * d * 4));
    float* o = static_cast<float*>(tessera::bench::dalloc(seqs * hq * d * 4));
    TB_CHECK_CUDA(cudaMemset(q, 0, seqs * hq * d * 4));
    std::vector<int32_t> qs(seqs + 1), lens(seqs, ctx), table(num_blocks);
    for (int64_t s = 0; s <= seqs; ++s) qs[s] = int32_t(s);
    for (int64_t i = 0; i < num_blocks; ++i) table[i] = int32_t((i * 7919) % num_blocks);
    int32_t* dqs = tessera::bench::upload(qs);
    int32_t* dlens = tessera::bench::upload(lens);
    int32_t* dtable = tessera::bench::upload(table);
    kc::PagedAttentionParams p =
        gqa_f16_params(q, k, v, o, hq, hkv, d, bs, seqs, seqs, dqs, dlens, dtable, blocks_per_seq);
    kc::choose_paged_attention_split(p, ctx, prop.multiProcessorCount, 256ll << 20);
    p.workspace = tessera::bench::dalloc(
        std::max<int64_t>(16, kc::paged_attention_workspace_bytes(seqs, hq, d, p.num_partitions)));
    const double ms = tessera::bench::time_ms([&] { return kc::paged_attention(p, nullptr); });
    rows.push_back({"paged decode 32K f16 GQA4 x8 seqs", ms, 2.0 * kv_bytes / ms / 1e6, "GB/s", hbm,
                    ">= 85% HBM"});
    for (void* ptr : {k, v, static_cast<void*>(q), static_cast<void*>(o), static_cast<void*>(dqs),
                      static_cast<void*>(dlens), static_cast<void*>(dtable), p.workspace}) {
      cudaFree(ptr);
    }
  }

  // 4b. Prefill attention: one sequence of 4096 new tokens, Hq 32, Hkv 8, D 128, f16 cache,
  // block 16 (causal: 2 * 2 * Hq * D * T (T + 1) / 2 flops). Flash kernel vs the split-K one.
  {
    const int64_t T = 4096, hq = 32, hkv = 8, d = 128, bs = 16, nb = T / bs;
    const int64_t kv_bytes = nb * bs * hkv * d * 2;
    void* k = tessera::bench::dalloc(kv_bytes);
    void* v = tessera::bench::dalloc(kv_bytes);
    fill(k, kv_bytes, 10);
    fill(v, kv_bytes, 11);
    float* q = static_cast<float*>(tessera::bench::dalloc(T * hq * d * 4));
    float* o = static_cast<float*>(tessera::bench::dalloc(T * hq * d * 4));
    fill(q, T * hq * d * 4, 12);
    std::vector<int32_t> qs = {0, int32_t(T)}, lens = {int32_t(T)}, table(nb);
    for (int64_t i = 0; i < nb; ++i) table[i] = int32_t((i * 37) % nb);
    int32_t* dqs = tessera::bench::upload(qs);
    int32_t* dlens = tessera::bench::upload(lens);
    int32_t* dtable = tessera::bench::upload(table);
    kc::PagedAttentionParams p =
        gqa_f16_params(q, k, v, o, hq, hkv, d, bs, T, 1, dqs, dlens, dtable, nb);
    const double flop = 4.0 * hq * d * (T * (T + 1) / 2.0);
    const bool flash = kc::flash_prefill_supported(p);
    const double ms = tessera::bench::time_ms([&] { return kc::paged_attention(p, nullptr); }, 5);
    float* o2 = static_cast<float*>(tessera::bench::dalloc(T * hq * d * 4));
    p.allow_flash = false;
    p.out = o2;
    const double old_ms =
        tessera::bench::time_ms([&] { return kc::paged_attention(p, nullptr); }, 2);
    char target[64];
    std::snprintf(target, sizeof(target), "vs split-K NMSE %.1e",
                  tessera::bench::nmse_dev(o2, o, T * hq * d));
    rows.push_back({flash ? "prefill 4096 f16 GQA4 d128 (flash)" : "prefill 4096 (no flash!)", ms,
                    flop / ms / 1e9, "TFLOP/s", peak, target});
    rows.push_back({"prefill 4096 f16 GQA4 d128 (split-K)", old_ms, flop / old_ms / 1e9, "TFLOP/s",
                    peak, "the decode kernel on prefill rows"});
    for (void* ptr :
         {k, v, static_cast<void*>(q), static_cast<void*>(o), static_cast<void*>(o2),
          static_cast<void*>(dqs), static_cast<void*>(dlens), static_cast<void*>(dtable)}) {
      cudaFree(ptr);
    }
  }

  // 5. rms_norm and silu_mul on 4096 x 8192 f32 (memory-bound).
  {
    const int64_t r = 4096, c = 8192, bytes = r * c * 4;
    float* a = static_cast<float*>(tessera::bench::dalloc(bytes));
    float* b = static_cast<float*>(tessera::bench::dalloc(bytes));
    float* out = static_cast<float*>(tessera::bench::dalloc(bytes));
    float* wgt = static_cast<float*>(tessera::bench::dalloc(c * 4));
    TB_CHECK_CUDA(cudaMemset(a, 0x3f, bytes));
    TB_CHECK_CUDA(cudaMemset(b, 0x3f, bytes));
    TB_CHECK_CUDA(cudaMemset(wgt, 0x3f, c * 4));
    const kc::RowLayout l = rows2(r, c);
    double ms =
        tessera::bench::time_ms([&] { return kc::rms_norm(a, l, wgt, 1e-6f, out, l, nullptr); });
    rows.push_back({"rms_norm 4096x8192 f32", ms, 2.0 * bytes / ms / 1e6, "GB/s", hbm, "-"});
    ms = tessera::bench::time_ms([&] { return kc::silu_mul(a, l, b, l, out, l, nullptr); });
    rows.push_back({"silu_mul 4096x8192 f32", ms, 3.0 * bytes / ms / 1e6, "GB/s", hbm, "-"});
    for (float* ptr : {a, b, out, wgt}) cudaFree(ptr);
  }

  std::printf("\n%-36s %10s %12s %8s %8s  %s\n", "kernel", "ms", "achieved", "unit", "floor%",
              "target");
  for (const Row& row : rows) {
    std::printf("%-36s %10.4f %12.1f %8s %7.1f%%  %s\n", row.name.c_str(), row.ms, row.achieved,
                row.unit, 100.0 * row.achieved / row.floor, row.target.c_str());
  }
  return 0;
}

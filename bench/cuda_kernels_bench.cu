// CUDA kernel benchmarks against their floors: HBM bandwidth measured by a copy kernel, tensor
// peak by a large cuBLASLt bf16 GEMM. Prints one table: time, achieved GB/s or TFLOP/s, the
// fraction of the floor, and the issue's target. `--probe` only says whether a GPU answers.
// Invariant: inputs are random (never zeros) and every timed kernel is checked for errors.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/attention/paged_attention.h"
#include "kernels/cuda/elementwise/elementwise.h"
#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/norm/rms_norm.h"

namespace kc = tessera::kernels::cuda;
using tessera::kernels::ElemType;

namespace {

#define CHECK_CUDA(expr)                                                                  \
  do {                                                                                    \
    const cudaError_t e_ = (expr);                                                        \
    if (e_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr,                   \
                   cudaGetErrorString(e_));                                               \
      std::exit(1);                                                                       \
    }                                                                                     \
  } while (0)

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

__global__ void copy_kernel(const float4* in, float4* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = in[i];
  }
}

void* dalloc(int64_t bytes) {
  void* p = nullptr;
  CHECK_CUDA(cudaMalloc(&p, bytes));
  return p;
}

void fill(void* p, int64_t bytes, uint32_t seed, bool fp8 = false) {
  fill_kernel<<<1024, 256>>>(static_cast<uint16_t*>(p), bytes / 2, seed, fp8);
  CHECK_CUDA(cudaGetLastError());
}

// Median-free simple timing: warm-up once, then `iters` runs between two events.
double time_ms(const std::function<cudaError_t()>& fn, int iters = 20) {
  CHECK_CUDA(fn());
  CHECK_CUDA(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  CHECK_CUDA(cudaEventRecord(a));
  for (int i = 0; i < iters; ++i) CHECK_CUDA(fn());
  CHECK_CUDA(cudaEventRecord(b));
  CHECK_CUDA(cudaEventSynchronize(b));
  float ms = 0;
  CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / iters;
}

struct Row {
  std::string name;
  double ms;
  double achieved;  // GB/s or TFLOP/s
  const char* unit;
  double floor;     // the same unit
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

}  // namespace

int main(int argc, char** argv) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("no GPU: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 2;
  }
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs, %.0f GiB)\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount, prop.totalGlobalMem / double(1ull << 30));
  if (argc > 1 && std::strcmp(argv[1], "--probe") == 0) return 0;
  std::vector<Row> rows;

  // 1. HBM bandwidth floor: a 2 x 2 GiB copy.
  const int64_t copy_bytes = 2ll << 30;
  void* ca = dalloc(copy_bytes);
  void* cb = dalloc(copy_bytes);
  fill(ca, copy_bytes, 1);
  const double copy_ms = time_ms([&] {
    copy_kernel<<<prop.multiProcessorCount * 8, 512>>>(static_cast<float4*>(ca),
                                                       static_cast<float4*>(cb), copy_bytes / 16);
    return cudaGetLastError();
  });
  const double hbm = 2.0 * copy_bytes / copy_ms / 1e6;  // GB/s
  rows.push_back({"copy 2 GiB (HBM floor)", copy_ms, hbm, "GB/s", hbm, "-"});
  cudaFree(ca);
  cudaFree(cb);

  // 2. Tensor peak: cuBLASLt bf16 8192^3.
  kc::LtContext* lt = nullptr;
  CHECK_CUDA(kc::lt_create(&lt, 64ll << 20));
  const int64_t G = 8192;
  void* ga = dalloc(G * G * 2);
  void* gb = dalloc(G * G * 2);
  float* gc = static_cast<float*>(dalloc(G * G * 4));
  fill(ga, G * G * 2, 2);
  fill(gb, G * G * 2, 3);
  const double gemm_ms = time_ms([&] {
    return kc::lt_gemm(lt, ElemType::kBF16, ga, G, gb, G, gc, G, G, G, G, nullptr);
  }, 10);
  const double peak = 2.0 * G * G * G / gemm_ms / 1e9;  // TFLOP/s
  rows.push_back({"cuBLASLt bf16 8192^3 (peak)", gemm_ms, peak, "TFLOP/s", peak, "-"});
  // Our bf16 GEMM is the cuBLASLt path itself; a decode-shaped one shows the small-M regime.
  const double gemv_ms = time_ms([&] {
    return kc::lt_gemm(lt, ElemType::kBF16, ga, G, gb, G, gc, G, 16, G, G, nullptr);
  });
  rows.push_back({"bf16 gemm M=16 N=K=8192", gemv_ms, G * G * 2.0 / gemv_ms / 1e6, "GB/s", hbm,
                  ">= 0.95x cuBLAS (it is cuBLASLt)"});

  // 3. FP8: cuBLASLt per-tensor baseline and the block-scaled kernel, 8192^3.
  float* scales = static_cast<float*>(dalloc(G * (G / 128) * 4));
  {
    std::vector<float> ones(G * (G / 128), 1.0f);
    CHECK_CUDA(cudaMemcpy(scales, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
  }
  fill(ga, G * G, 4, true);
  fill(gb, G * G, 5, true);
  cudaError_t fp8_err = kc::lt_gemm_fp8(lt, static_cast<uint8_t*>(ga), G, scales,
                                        static_cast<uint8_t*>(gb), G, scales, gc, G, G, G, G,
                                        nullptr);
  if (fp8_err == cudaSuccess) {
    const double ms = time_ms([&] {
      return kc::lt_gemm_fp8(lt, static_cast<uint8_t*>(ga), G, scales, static_cast<uint8_t*>(gb),
                             G, scales, gc, G, G, G, G, nullptr);
    }, 10);
    rows.push_back({"cuBLASLt fp8 per-tensor 8192^3", ms, 2.0 * G * G * G / ms / 1e9, "TFLOP/s",
                    peak, "baseline"});
  } else {
    std::printf("cuBLASLt fp8: %s\n", cudaGetErrorString(fp8_err));
  }
  const int64_t F = 4096;  // the CUDA-core baseline is slow: a smaller cube
  const double fp8_ms = time_ms([&] {
    return kc::gemm_fp8_block_scaled(static_cast<uint8_t*>(ga), F, scales,
                                     static_cast<uint8_t*>(gb), F, scales, gc, F, F, F, F,
                                     nullptr);
  }, 3);
  rows.push_back({"fp8 block-scaled 4096^3 (ours)", fp8_ms, 2.0 * F * F * F / fp8_ms / 1e9,
                  "TFLOP/s", peak, ">= 1200 TFLOP/s"});
  cudaFree(ga);
  cudaFree(gb);
  cudaFree(gc);
  cudaFree(scales);
  kc::lt_destroy(lt);

  // 4. Paged decode attention, 32K context: 8 seqs, Hq 32, Hkv 8, D 128, f16 KV, block 16.
  {
    const int64_t seqs = 8, hq = 32, hkv = 8, d = 128, bs = 16, ctx = 32768;
    const int64_t blocks_per_seq = ctx / bs, num_blocks = seqs * blocks_per_seq;
    const int64_t kv_bytes = num_blocks * bs * hkv * d * 2;
    void* k = dalloc(kv_bytes);
    void* v = dalloc(kv_bytes);
    fill(k, kv_bytes, 6);
    fill(v, kv_bytes, 7);
    float* q = static_cast<float*>(dalloc(seqs * hq * d * 4));
    float* o = static_cast<float*>(dalloc(seqs * hq * d * 4));
    CHECK_CUDA(cudaMemset(q, 0, seqs * hq * d * 4));
    std::vector<int32_t> qs(seqs + 1), lens(seqs, ctx), table(num_blocks);
    for (int64_t s = 0; s <= seqs; ++s) qs[s] = int32_t(s);
    for (int64_t i = 0; i < num_blocks; ++i) table[i] = int32_t((i * 7919) % num_blocks);
    int32_t* dqs = static_cast<int32_t*>(dalloc(qs.size() * 4));
    int32_t* dlens = static_cast<int32_t*>(dalloc(lens.size() * 4));
    int32_t* dtable = static_cast<int32_t*>(dalloc(table.size() * 4));
    CHECK_CUDA(cudaMemcpy(dqs, qs.data(), qs.size() * 4, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(dlens, lens.data(), lens.size() * 4, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(dtable, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
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
    p.num_tokens = seqs;
    p.num_seqs = seqs;
    p.num_q_heads = hq;
    p.num_kv_heads = hkv;
    p.head_dim = d;
    p.v_head_dim = d;
    p.block_size = bs;
    p.query_start = dqs;
    p.seq_lens = dlens;
    p.block_tables = dtable;
    p.bt_stride = blocks_per_seq;
    p.scale = 0.088f;
    kc::choose_paged_attention_split(p, ctx, prop.multiProcessorCount, 256ll << 20);
    p.workspace = dalloc(std::max<int64_t>(16, kc::paged_attention_workspace_bytes(
                                                   seqs, hq, d, p.num_partitions)));
    const double ms = time_ms([&] { return kc::paged_attention(p, nullptr); });
    rows.push_back({"paged decode 32K f16 GQA4 x8 seqs", ms, 2.0 * kv_bytes / ms / 1e6, "GB/s",
                    hbm, ">= 85% HBM"});
    for (void* ptr : {k, v, static_cast<void*>(q), static_cast<void*>(o),
                      static_cast<void*>(dqs), static_cast<void*>(dlens),
                      static_cast<void*>(dtable), p.workspace}) {
      cudaFree(ptr);
    }
  }

  // 5. rms_norm and silu_mul on 4096 x 8192 f32 (memory-bound).
  {
    const int64_t r = 4096, c = 8192, bytes = r * c * 4;
    float* a = static_cast<float*>(dalloc(bytes));
    float* b = static_cast<float*>(dalloc(bytes));
    float* out = static_cast<float*>(dalloc(bytes));
    float* wgt = static_cast<float*>(dalloc(c * 4));
    CHECK_CUDA(cudaMemset(a, 0x3f, bytes));
    CHECK_CUDA(cudaMemset(b, 0x3f, bytes));
    CHECK_CUDA(cudaMemset(wgt, 0x3f, c * 4));
    const kc::RowLayout l = rows2(r, c);
    double ms = time_ms([&] { return kc::rms_norm(a, l, wgt, 1e-6f, out, l, nullptr); });
    rows.push_back({"rms_norm 4096x8192 f32", ms, 2.0 * bytes / ms / 1e6, "GB/s", hbm, "-"});
    ms = time_ms([&] { return kc::silu_mul(a, l, b, l, out, l, nullptr); });
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

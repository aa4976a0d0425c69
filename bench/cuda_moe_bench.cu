// CUDA MoE kernel benchmarks on DeepSeek-V3 and DeepSeek-V2-Lite layer shapes at T = 1, 16, 256:
// route, the grouped expert GEMMs (gate_up and down; bf16 and FP8 block-scaled) and combine.
// Each row prints the time beside its floor: max(bytes / measured HBM bandwidth, flops /
// measured bf16 tensor peak). `--probe` only says whether a GPU answers (exit 2 without one).
// Invariant: inputs are random (never zeros); ids are distinct per token; every launch checked.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bench/cuda_bench_util.cuh"
#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/moe/moe.h"

namespace kc = tessera::kernels::cuda;
using tessera::kernels::ElemType;

namespace {

// Random bytes shaped as values: bf16 in +-[0.25, 1), e4m3 bytes in +-[0.25, 1), or f32.
enum class Fill { kBF16, kFP8, kF32 };

__global__ void fill_kernel(void* p, int64_t n, uint32_t seed, Fill kind) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    if (kind == Fill::kBF16) {
      static_cast<uint16_t*>(p)[i] = uint16_t(0x3e80 | (h & 0x7f) | (h & 0x8000));
    } else if (kind == Fill::kFP8) {
      static_cast<uint8_t*>(p)[i] = uint8_t(0x30 | (h & 0x07) | (h & 0x80));
    } else {
      static_cast<float*>(p)[i] = (float(h & 0xffff) / 65536.0f - 0.5f) * 4.0f;
    }
  }
}

void fill(void* p, int64_t n, uint32_t seed, Fill kind) {
  fill_kernel<<<1024, 256>>>(p, n, seed, kind);
  TB_CHECK_CUDA(cudaGetLastError());
}

struct Floors {
  double hbm_gbs;      // measured copy bandwidth
  double peak_tflops;  // measured cuBLASLt bf16
};

void print_row(const std::string& name, double ms, double bytes, double flops, const Floors& f) {
  const double mem_ms = bytes / (f.hbm_gbs * 1e6);
  const double math_ms = flops / (f.peak_tflops * 1e9);
  const double floor_ms = std::max(mem_ms, math_ms);
  std::printf("%-44s %10.1f us  floor %9.1f us (%s)  %5.1f%% of floor\n", name.c_str(), ms * 1e3,
              floor_ms * 1e3, mem_ms >= math_ms ? "bytes" : "flops", 100.0 * floor_ms / ms);
}

// NMSE of the tensor-core result in a.out against the f32 CUDA-core kernel's (into `other`).
double cross_check(kc::GroupedGemmArgs a, float* other) {
  const int64_t count = a.num_tokens * a.top_k * a.n;
  std::vector<float> got(count), want(count);
  TB_CHECK_CUDA(cudaDeviceSynchronize());
  TB_CHECK_CUDA(cudaMemcpy(got.data(), a.out, count * 4, cudaMemcpyDeviceToHost));
  a.out = other;
  a.force_simt = true;
  TB_CHECK_CUDA(kc::moe_grouped_gemm(a, nullptr));
  TB_CHECK_CUDA(cudaDeviceSynchronize());
  TB_CHECK_CUDA(cudaMemcpy(want.data(), other, count * 4, cudaMemcpyDeviceToHost));
  double err = 0, ref = 0;
  for (int64_t i = 0; i < count; ++i) {
    err += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    ref += double(want[i]) * want[i];
  }
  return ref > 0 ? err / ref : err;
}

struct Model {
  const char* name;
  int experts, top_k, hidden, inter, n_group, topk_group;
  bool sigmoid, norm;
  float scaling;
};

void bench_model(const Model& m, const Floors& f) {
  const int64_t E = m.experts, H = m.hidden, I = m.inter;
  // Weights: gate_up [E, 2I, H] and down [E, H, I], bf16 and fp8 with 128x128 scales.
  struct Gemm {
    const char* what;
    int64_t n, k;
  };
  const Gemm gemms[] = {{"gate_up", 2 * I, H}, {"down", H, I}};
  const int64_t max_nk = std::max(2 * I * H, H * I);
  void* w_bf16 = tessera::bench::dalloc(E * max_nk * 2);
  void* w_fp8 = tessera::bench::dalloc(E * max_nk);
  fill(w_bf16, E * max_nk, 11, Fill::kBF16);
  fill(w_fp8, E * max_nk, 12, Fill::kFP8);
  const int64_t max_scales = E * ((2 * I + 127) / 128 + 1) * ((H + 127) / 128 + 1);
  float* scales = static_cast<float*>(tessera::bench::dalloc(max_scales * 4));
  {
    std::vector<float> s(max_scales);
    std::mt19937 rng(3);
    for (float& v : s) v = std::uniform_real_distribution<float>(0.5f, 2.0f)(rng) / 256.0f;
    TB_CHECK_CUDA(cudaMemcpy(scales, s.data(), s.size() * 4, cudaMemcpyHostToDevice));
  }
  const int64_t max_t = 256;
  float* bias = static_cast<float*>(tessera::bench::dalloc(E * 4));
  fill(bias, E, 13, Fill::kF32);
  float* logits = static_cast<float*>(tessera::bench::dalloc(max_t * E * 4));
  fill(logits, max_t * E, 14, Fill::kF32);
  int32_t* ids = static_cast<int32_t*>(tessera::bench::dalloc(max_t * m.top_k * 4));
  float* weights = static_cast<float*>(tessera::bench::dalloc(max_t * m.top_k * 4));
  const int64_t max_n = std::max(2 * I, H), max_k = std::max(I, H);
  float* x = static_cast<float*>(tessera::bench::dalloc(max_t * max_k * 4));
  fill(x, max_t * max_k, 15, Fill::kF32);
  float* out = static_cast<float*>(tessera::bench::dalloc(max_t * m.top_k * max_n * 4));
  float* out_check = static_cast<float*>(tessera::bench::dalloc(max_t * m.top_k * max_n * 4));
  float* combined = static_cast<float*>(tessera::bench::dalloc(max_t * H * 4));
  void* workspace =
      tessera::bench::dalloc(kc::moe_grouped_gemm_workspace_bytes(max_t * m.top_k, E));

  kc::moe::RouteParams rp;
  rp.sigmoid = m.sigmoid;
  rp.num_experts = m.experts;
  rp.top_k = m.top_k;
  rp.n_group = m.n_group;
  rp.topk_group = m.topk_group;
  rp.norm_topk_prob = m.norm;
  rp.routed_scaling_factor = m.scaling;

  for (int64_t T : {1, 16, 256}) {
    std::printf("-- %s T=%lld\n", m.name, static_cast<long long>(T));
    const double route_ms = tessera::bench::time_ms([&] {
      return kc::moe_route(logits, E, m.sigmoid ? bias : nullptr, rp, ids, m.top_k, weights,
                           m.top_k, T, nullptr);
    });
    print_row("route", route_ms, T * E * 4.0 + T * m.top_k * 8.0, 0, f);

    // Distinct random experts per token (the router's ids depend on the fill's logits).
    std::vector<int32_t> h_ids(T * m.top_k);
    std::mt19937 rng(static_cast<uint32_t>(T));
    std::set<int32_t> active;
    for (int64_t t = 0; t < T; ++t) {
      std::set<int32_t> mine;
      while (static_cast<int>(mine.size()) < m.top_k) {
        mine.insert(std::uniform_int_distribution<int32_t>(0, m.experts - 1)(rng));
      }
      std::copy(mine.begin(), mine.end(), h_ids.begin() + t * m.top_k);
      active.insert(mine.begin(), mine.end());
    }
    TB_CHECK_CUDA(cudaMemcpy(ids, h_ids.data(), h_ids.size() * 4, cudaMemcpyHostToDevice));
    const double pairs = double(T) * m.top_k;

    for (const Gemm& g : gemms) {
      for (bool fp8 : {false, true}) {
        kc::GroupedGemmArgs a;
        a.x = x;
        a.ldx = g.k;
        a.w_type = fp8 ? ElemType::kFP8_E4M3 : ElemType::kBF16;
        a.w = fp8 ? w_fp8 : w_bf16;
        a.w_expert_stride = g.n * g.k;
        a.w_row_stride = g.k;
        const int64_t sn = (g.n + 127) / 128, sk = (g.k + 127) / 128;
        a.w_scale = scales;
        a.scale_expert_stride = sn * sk;
        a.scale_row_stride = sk;
        a.ids = ids;
        a.ids_stride = m.top_k;
        a.out = out;
        a.out_tok = m.top_k * g.n;
        a.out_slot = g.n;
        a.num_tokens = T;
        a.top_k = m.top_k;
        a.num_experts = E;
        a.n = g.n;
        a.k = g.k;
        a.workspace = workspace;
        const double ms =
            tessera::bench::time_ms([&] { return kc::moe_grouped_gemm(a, nullptr); }, 10);
        const double nmse = cross_check(a, out_check);
        const double w_bytes = double(active.size()) * g.n * g.k * (fp8 ? 1 : 2);
        const double bytes = w_bytes + double(T) * g.k * 4 + pairs * g.n * 4;
        print_row(std::string("grouped gemm ") + g.what + (fp8 ? " fp8" : " bf16") + " n" +
                      std::to_string(g.n) + " k" + std::to_string(g.k),
                  ms, bytes, 2.0 * pairs * g.n * g.k, f);
        std::printf("%-44s nmse vs the CUDA-core kernel %.2e%s\n", "", nmse,
                    nmse < 1e-4 ? "" : "  <-- MISMATCH");
      }
    }

    const double combine_ms = tessera::bench::time_ms([&] {
      return kc::moe_combine(out, m.top_k * H, H, weights, m.top_k, combined, H, T, m.top_k, H,
                             nullptr);
    });
    print_row("combine", combine_ms, pairs * H * 4.0 + T * H * 4.0 + pairs * 4.0, pairs * H * 2.0,
              f);
  }
  for (void* p : {w_bf16, w_fp8, static_cast<void*>(scales), static_cast<void*>(bias),
                  static_cast<void*>(logits), static_cast<void*>(ids), static_cast<void*>(weights),
                  static_cast<void*>(x), static_cast<void*>(out), static_cast<void*>(out_check),
                  static_cast<void*>(combined), workspace}) {
    cudaFree(p);
  }
}

}  // namespace

int main(int argc, char** argv) {
  cudaDeviceProp prop{};
  if (const int rc = tessera::bench::open_device(argc, argv, &prop); rc >= 0) return rc;
  Floors f{};
  f.hbm_gbs = tessera::bench::measure_hbm_gbs(prop.multiProcessorCount);
  {  // Tensor peak: cuBLASLt bf16 8192^3.
    kc::LtContext* lt = nullptr;
    TB_CHECK_CUDA(kc::lt_create(&lt, 64ll << 20));
    const int64_t G = 8192;
    void* a = tessera::bench::dalloc(G * G * 2);
    void* b = tessera::bench::dalloc(G * G * 2);
    float* c = static_cast<float*>(tessera::bench::dalloc(G * G * 4));
    fill(a, G * G, 2, Fill::kBF16);
    fill(b, G * G, 3, Fill::kBF16);
    const double ms = tessera::bench::time_ms(
        [&] { return kc::lt_gemm(lt, ElemType::kBF16, a, G, b, G, c, G, G, G, G, nullptr); }, 5);
    f.peak_tflops = 2.0 * G * G * G / ms / 1e9;
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    kc::lt_destroy(lt);
  }
  std::printf("floors: HBM %.0f GB/s (copy), bf16 %.0f TFLOP/s (cuBLASLt 8192^3)\n", f.hbm_gbs,
              f.peak_tflops);

  const Model models[] = {
      {"DeepSeek-V3 (E256 top8 7168/2048)", 256, 8, 7168, 2048, 8, 4, true, true, 2.5f},
      {"DeepSeek-V2-Lite (E64 top6 2048/1408)", 64, 6, 2048, 1408, 1, 1, false, false, 1.0f},
  };
  for (const Model& m : models) bench_model(m, f);
  return 0;
}

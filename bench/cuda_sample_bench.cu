// Backend::sample's CUDA kernel (kernels/cuda/sampling) per call at B in {1, 64, 256} and the
// vocab sizes of Llama-2 (32000), Llama-3 (128256) and Qwen2 (152064), greedy and top-p 0.9,
// beside its floor (one read of the logits at the HBM bandwidth a copy kernel measures).
// Invariant: logits are random (never constant); the first rows of each run are checked against
// the reference sampler and mismatches are printed with their distance to a CDF boundary.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "kernels/cuda/sampling/sampling.h"
#include "kernels/ref/sampling.h"

namespace kc = tessera::kernels::cuda;
namespace ks = tessera::kernels::sampling;
namespace kr = tessera::kernels::ref;

namespace {

#define CHECK_CUDA(expr)                                                                         \
  do {                                                                                           \
    const cudaError_t e_ = (expr);                                                               \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

// Logits ~ sum of four hashed uniforms, spread 2.5 (an LLM-like softmax: a few dominant ids).
__global__ void fill_logits(float* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    uint32_t h = uint32_t(i) ^ seed;
    for (int k = 0; k < 4; ++k) {
      h = h * 2654435761u + 0x9e3779b9u;
      h ^= h >> 15;
      h *= 0x2c1b3c6du;
      h ^= h >> 12;
      s += float(h >> 8) * (1.0f / 16777216.0f);
    }
    p[i] = (s - 2.0f) * 4.3f;
  }
}

__global__ void copy_kernel(const float4* in, float4* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = in[i];
  }
}

template <typename F>
double time_ms(F&& f, int iters = 20) {
  CHECK_CUDA(f());
  CHECK_CUDA(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  CHECK_CUDA(cudaEventRecord(a));
  for (int i = 0; i < iters; ++i) CHECK_CUDA(f());
  CHECK_CUDA(cudaEventRecord(b));
  CHECK_CUDA(cudaEventSynchronize(b));
  float ms = 0.0f;
  CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / iters;
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
  std::printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount);
  if (argc > 1 && std::strcmp(argv[1], "--probe") == 0) return 0;

  const int64_t copy_bytes = 1ll << 30;
  float *ca = nullptr, *cb = nullptr;
  CHECK_CUDA(cudaMalloc(&ca, copy_bytes));
  CHECK_CUDA(cudaMalloc(&cb, copy_bytes));
  const double copy_ms = time_ms([&] {
    copy_kernel<<<prop.multiProcessorCount * 8, 512>>>(
        reinterpret_cast<const float4*>(ca), reinterpret_cast<float4*>(cb), copy_bytes / 16);
    return cudaGetLastError();
  });
  const double hbm_gbs = 2.0 * copy_bytes / copy_ms / 1e6;
  CHECK_CUDA(cudaFree(ca));
  CHECK_CUDA(cudaFree(cb));
  std::printf("HBM copy floor: %.0f GB/s\n\n", hbm_gbs);
  std::printf("%-8s %6s %8s %12s %12s %10s %8s %s\n", "mode", "B", "V", "us/call", "floor us",
              "GB/s", "x floor", "check vs reference");

  const int64_t max_rows = 256, max_vocab = 152064;
  float* logits = nullptr;
  int32_t* ids = nullptr;
  ks::SampleRowSpec* specs = nullptr;
  CHECK_CUDA(cudaMalloc(&logits, max_rows * max_vocab * 4));
  CHECK_CUDA(cudaMalloc(&ids, max_rows * 4));
  CHECK_CUDA(cudaMalloc(&specs, max_rows * sizeof(ks::SampleRowSpec)));
  int failures = 0;
  for (const bool greedy : {true, false}) {
    for (const int64_t vocab : {32000ll, 128256ll, 152064ll}) {
      for (const int64_t rows : {1ll, 64ll, 256ll}) {
        fill_logits<<<prop.multiProcessorCount * 4, 256>>>(logits, rows * vocab,
                                                           uint32_t(vocab * 7 + rows));
        std::vector<ks::SampleRowSpec> host_specs(rows);
        for (int64_t r = 0; r < rows; ++r) {
          host_specs[r].temperature = greedy ? 0.0f : 0.8f;
          host_specs[r].top_p = greedy ? 1.0f : 0.9f;
          host_specs[r].seed = 1000 + r;
          host_specs[r].step = r * 3;
        }
        CHECK_CUDA(cudaMemcpy(specs, host_specs.data(), rows * sizeof(ks::SampleRowSpec),
                              cudaMemcpyHostToDevice));
        const double ms = time_ms(
            [&] { return kc::sample_rows(logits, rows, vocab, vocab, specs, ids, nullptr); });
        const double bytes = double(rows) * vocab * 4;
        const double floor_us = bytes / hbm_gbs / 1e3;
        // Check the first rows against the reference.
        const int64_t check = rows < 4 ? rows : 4;
        std::vector<float> host(check * vocab);
        std::vector<int32_t> got(check);
        CHECK_CUDA(cudaMemcpy(host.data(), logits, host.size() * 4, cudaMemcpyDeviceToHost));
        CHECK_CUDA(cudaMemcpy(got.data(), ids, check * 4, cudaMemcpyDeviceToHost));
        int bad = 0;
        for (int64_t r = 0; r < check; ++r) {
          const float* row = host.data() + r * vocab;
          const int32_t want = kr::sample_row(row, vocab, host_specs[r]);
          if (want == got[r]) continue;
          const auto kept = kr::sample_kept(row, vocab, host_specs[r]);
          const double d = kr::cdf_boundary_distance(
              kept, ks::philox_uniform(host_specs[r].seed, host_specs[r].step));
          if (d >= 1e-5) ++bad;
        }
        failures += bad;
        std::printf("%-8s %6lld %8lld %12.2f %12.2f %10.0f %8.1f %lld rows: %s\n",
                    greedy ? "greedy" : "top_p.9", static_cast<long long>(rows),
                    static_cast<long long>(vocab), ms * 1e3, floor_us, bytes / ms / 1e6,
                    ms * 1e3 / floor_us, static_cast<long long>(check), bad ? "MISMATCH" : "ok");
      }
    }
  }
  cudaFree(logits);
  cudaFree(ids);
  cudaFree(specs);
  return failures == 0 ? 0 : 1;
}

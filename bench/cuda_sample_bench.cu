// Backend::sample's CUDA kernel (kernels/cuda/sampling) per call at B in {1, 64, 256} and the
// vocab sizes of Llama-2 (32000), Llama-3 (128256) and Qwen2 (152064), greedy and top-p 0.9,
// beside its floor (one read of the logits at the HBM bandwidth a copy kernel measures).
// Invariant: logits are random (never constant); the first rows of each run are checked against
// the reference sampler and mismatches are printed with their distance to a CDF boundary.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "bench/cuda_bench_util.cuh"
#include "kernels/cuda/sampling/sampling.h"
#include "kernels/ref/sampling.h"

namespace kc = tessera::kernels::cuda;
namespace ks = tessera::kernels::sampling;
namespace kr = tessera::kernels::ref;

namespace {

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

}  // namespace

int main(int argc, char** argv) {
  cudaDeviceProp prop{};
  if (const int rc = tessera::bench::open_device(argc, argv, &prop); rc >= 0) return rc;
  const double hbm_gbs = tessera::bench::measure_hbm_gbs(prop.multiProcessorCount);
  std::printf("HBM copy floor: %.0f GB/s\n\n", hbm_gbs);
  std::printf("%-8s %6s %8s %12s %12s %10s %8s %s\n", "mode", "B", "V", "us/call", "floor us",
              "GB/s", "x floor", "check vs reference");

  const int64_t max_rows = 256, max_vocab = 152064;
  float* logits = nullptr;
  int32_t* ids = nullptr;
  ks::SampleRowSpec* specs = nullptr;
  TB_CHECK_CUDA(cudaMalloc(&logits, max_rows * max_vocab * 4));
  TB_CHECK_CUDA(cudaMalloc(&ids, max_rows * 4));
  TB_CHECK_CUDA(cudaMalloc(&specs, max_rows * sizeof(ks::SampleRowSpec)));
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
        TB_CHECK_CUDA(cudaMemcpy(specs, host_specs.data(), rows * sizeof(ks::SampleRowSpec),
                                 cudaMemcpyHostToDevice));
        const double ms = tessera::bench::time_ms(
            [&] { return kc::sample_rows(logits, rows, vocab, vocab, specs, ids, nullptr); });
        const double bytes = double(rows) * vocab * 4;
        const double floor_us = bytes / hbm_gbs / 1e3;
        // Check the first rows against the reference.
        const int64_t check = rows < 4 ? rows : 4;
        std::vector<float> host(check * vocab);
        std::vector<int32_t> got(check);
        TB_CHECK_CUDA(cudaMemcpy(host.data(), logits, host.size() * 4, cudaMemcpyDeviceToHost));
        TB_CHECK_CUDA(cudaMemcpy(got.data(), ids, check * 4, cudaMemcpyDeviceToHost));
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

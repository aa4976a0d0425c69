// CPU matmul micro-benchmark at the SmolLM2-135M shapes: M=1 (decode) and M=512 (prefill) per
// weight type, printing weight GB/s and GFLOP/s beside the floor — a streaming-read memory
// bandwidth measured here with the same threads. M=1 rotates over enough weight copies that
// every call streams from DRAM, as a decode step does.
// Usage: matmul_bench [--threads N] [--quick] [--decode-only] [--hot (cache-resident weights)]
// (TESSERA_CPU_ISA=scalar|avx2|avx512 to force)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/cpu_bench_util.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/matmul.h"
#include "kernels/ref/quantize.h"
#include "src/backend/cpu_matmul.h"
#include "tessera/core/tensor.h"
#include "tessera/core/thread_pool.h"

namespace {

using tessera::DType;
using Clock = std::chrono::steady_clock;
using tessera::bench::seconds_since;

struct Case {
  DType type;
  int64_t n, k;
};

void run_case(tessera::ThreadPool& pool, tessera::backend::CpuMatmul& mm, const Case& c, int64_t m,
              double bw_gbs, bool quick, bool hot) {
  const tessera::kernels::ElemTraits t = tessera::kernels::elem_traits(c.type);
  const int64_t row_bytes = c.k / t.block_elems * t.block_bytes;
  const int64_t w_bytes = c.n * row_bytes;
  // M=1: enough copies to stream >= 192 MiB per pass (weights never cache-resident).
  const int64_t copies = m == 1 && !hot ? std::max<int64_t>(1, (int64_t{192} << 20) / w_bytes) : 1;
  std::vector<char> w(static_cast<size_t>(w_bytes * copies));
  {
    std::mt19937 rng(5);
    std::normal_distribution<float> dist(0.0f, 0.5f);
    std::vector<float> row(c.k);
    for (int64_t j = 0; j < c.n; ++j) {
      for (float& v : row) v = dist(rng);
      tessera::kernels::ref::quantize_row(c.type, row.data(), w.data() + j * row_bytes, c.k);
    }
    for (int64_t i = 1; i < copies; ++i) std::memcpy(w.data() + i * w_bytes, w.data(), w_bytes);
  }
  std::vector<float> x(m * c.k), out(m * c.n);
  std::mt19937 rng(6);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : x) v = dist(rng);
  tessera::Tensor xt(x.data(), DType::kF32, {m, c.k});
  tessera::Tensor ot(out.data(), DType::kF32, {m, c.n});
  auto call = [&](int64_t i) {
    tessera::Tensor wt(w.data() + (i % copies) * w_bytes, c.type, {c.n, c.k});
    if (!mm.run(pool, xt, wt, ot).ok()) std::abort();
  };
  for (int64_t i = 0; i < copies; ++i) call(i);  // warm-up pass (faults pages in)
  const double min_seconds = quick ? 0.1 : 0.5;
  int64_t iters = 0;
  const auto t0 = Clock::now();
  double s = 0.0;
  while (s < min_seconds || iters < 3) {
    call(iters++);
    s = seconds_since(t0);
  }
  const double sec = s / iters;
  const double gbs = w_bytes / sec / 1e9;
  const double gflops = 2.0 * m * c.n * c.k / sec / 1e9;
  const double floor_us = w_bytes / (bw_gbs * 1e9) * 1e6;
  // NOTE: the bytes floor binds at M=1; at M=512 the kernels are compute-bound and the
  // weight GB/s column only shows how far from that floor they are.
  std::printf(
      "%-5s M=%-4ld N=%-6ld K=%-5ld %10.1f us  %7.2f GB/s  %8.2f GFLOP/s  "
      "bytes floor %8.1f us (%.0f%% of bw)\n",
      std::string(tessera::dtype_name(c.type)).c_str(), static_cast<long>(m),
      static_cast<long>(c.n), static_cast<long>(c.k), sec * 1e6, gbs, gflops, floor_us,
      100.0 * gbs / bw_gbs);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows when piped
  int threads = 2;
  bool quick = false;
  bool prefill = true;
  bool hot = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--decode-only")) prefill = false;
    if (!std::strcmp(argv[i], "--hot")) hot = true;
  }
  tessera::ThreadPool pool(threads);
  tessera::backend::CpuMatmul mm;
  const double bw = tessera::bench::read_bandwidth_gbs(pool);
  std::printf("threads %d, isa %s, streaming-read bandwidth %.2f GB/s\n", threads,
              tessera::kernels::cpu::isa_name(mm.isa()), bw);
  std::vector<Case> cases;
  for (DType t :
       {DType::kQ4_1, DType::kQ4_0, DType::kQ8_0, DType::kF16, DType::kBF16, DType::kF32}) {
    cases.push_back({t, 576, 576});
    cases.push_back({t, 1536, 576});
    cases.push_back({t, 576, 1536});
  }
  for (DType t : {DType::kQ4_K, DType::kQ6_K}) cases.push_back({t, 576, 1536});
  cases.push_back({DType::kQ8_0, 49152, 576});  // tied output matrix
  for (int64_t m : {int64_t{1}, int64_t{512}}) {
    if (m == 512 && !prefill) break;
    for (const Case& c : cases) run_case(pool, mm, c, m, bw, quick, hot);
  }
  return 0;
}

// Block-scaled FP8 matmul micro-benchmark at DeepSeek-V3 shapes (hidden 7168, expert
// intermediate 2048, 128x128 blocks): M=1 (decode) streams the weight from DRAM (rotating over
// >= 192 MiB of copies) and prints weight GB/s against a streaming-read bandwidth measured here
// with the same threads, and against the bf16 and Q8_0 matmul (CpuMatmul) at the same shape.
// M=16 and M=128 (prefill-like) print GFLOP/s.
// Usage: fp8_matmul_bench [--threads N] [--quick] [--decode-only]   (TESSERA_CPU_ISA to force)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/cpu_bench_util.h"
#include "kernels/common/types.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/ops.h"
#include "kernels/ref/quantize.h"
#include "src/backend/cpu_fp8.h"
#include "src/backend/cpu_matmul.h"
#include "tessera/core/tensor.h"
#include "tessera/core/thread_pool.h"

namespace {

using tessera::DType;
using tessera::Tensor;
using Clock = std::chrono::steady_clock;

void run_shape(tessera::ThreadPool& pool, int64_t m, int64_t n, int64_t k, double bw, bool quick) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(m * k), out(m * n);
  for (float& v : x) v = dist(rng);
  Tensor xt(x.data(), DType::kF32, {m, k});
  Tensor ot(out.data(), DType::kF32, {m, n});
  auto copies_for = [&](int64_t w_bytes) {
    return m == 1 ? std::max<int64_t>(1, (int64_t{192} << 20) / w_bytes) : 1;
  };

  // FP8 weights: random non-NaN codes, scales ~ amax / 448.
  const int64_t fp8_bytes = n * k;
  const int64_t sn = (n + 127) / 128, sk = (k + 127) / 128;
  const int64_t fp8_copies = copies_for(fp8_bytes);
  std::vector<uint8_t> w8(static_cast<size_t>(fp8_bytes * fp8_copies));
  for (int64_t i = 0; i < fp8_bytes; ++i) {
    uint8_t v = static_cast<uint8_t>(rng());
    w8[i] = (v & 0x7f) == 0x7f ? v ^ 1 : v;
  }
  for (int64_t i = 1; i < fp8_copies; ++i) {
    std::memcpy(w8.data() + i * fp8_bytes, w8.data(), fp8_bytes);
  }
  std::vector<float> scale(sn * sk, 1.0f / 448.0f);
  Tensor st(scale.data(), DType::kF32, {sn, sk});
  tessera::backend::CpuFp8Matmul fp8;
  const double fp8_sec = tessera::bench::time_calls(fp8_copies, quick, [&](int64_t i) {
    Tensor wt(w8.data() + (i % fp8_copies) * fp8_bytes, DType::kFP8_E4M3, {n, k});
    if (!fp8.run(pool, xt, wt, st, tessera::backend::BlockScaleParams{}, ot).ok()) std::abort();
  });
  tessera::bench::print_matmul_row("fp8_e4m3", m, n, k, fp8_bytes + 4 * sn * sk, fp8_sec, bw,
                                   fp8_sec, "fp8");
  w8.clear();
  w8.shrink_to_fit();

  tessera::backend::CpuMatmul mm;
  for (DType type : {DType::kBF16, DType::kQ8_0}) {
    const tessera::kernels::ElemTraits t = tessera::kernels::elem_traits(type);
    const int64_t row_bytes = k / t.block_elems * t.block_bytes;
    const int64_t w_bytes = n * row_bytes;
    const int64_t copies = copies_for(w_bytes);
    std::vector<char> w(static_cast<size_t>(w_bytes * copies));
    std::vector<float> row(k);
    for (int64_t j = 0; j < n; ++j) {
      for (float& v : row) v = 0.05f * dist(rng);
      tessera::kernels::ref::quantize_row(type, row.data(), w.data() + j * row_bytes, k);
    }
    for (int64_t i = 1; i < copies; ++i) std::memcpy(w.data() + i * w_bytes, w.data(), w_bytes);
    const double sec = tessera::bench::time_calls(copies, quick, [&](int64_t i) {
      Tensor wt(w.data() + (i % copies) * w_bytes, type, {n, k});
      if (!mm.run(pool, xt, wt, ot).ok()) std::abort();
    });
    tessera::bench::print_matmul_row(std::string(tessera::dtype_name(type)).c_str(), m, n, k,
                                     w_bytes, sec, bw, fp8_sec, "fp8");
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int threads = 2;
  bool quick = false, prefill = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--decode-only")) prefill = false;
  }
  tessera::ThreadPool pool(threads);
  const double bw = tessera::bench::read_bandwidth_gbs(pool);
  std::printf("threads %d, isa %s, streaming-read bandwidth %.2f GB/s\n", threads,
              tessera::kernels::cpu::isa_name(tessera::kernels::cpu::ops_isa()), bw);
  struct Shape {
    int64_t n, k;
  };
  // Expert gate/up [2048, 7168] and down [7168, 2048]; an edge-block shape [1536 + 64, 7168 - 64].
  const Shape shapes[] = {{2048, 7168}, {7168, 2048}, {1600, 7104}};
  for (int64_t m : {int64_t{1}, int64_t{16}, int64_t{128}}) {
    if (m > 1 && !prefill) break;
    for (const Shape& s : shapes) run_shape(pool, m, s.n, s.k, bw, quick);
  }
  return 0;
}

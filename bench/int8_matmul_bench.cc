// INT8 matmul micro-benchmark at Llama-3-8B projection shapes (q/o [4096, 4096], k/v
// [1024, 4096], gate/up [14336, 4096], down [4096, 14336]): W8A8 and weight-only INT8 against the
// f32 and Q8_0 matmul (CpuMatmul) of the same shape with the same threads. M=1 (decode) streams
// the weight from DRAM (rotating over >= 192 MiB of copies): GB/s of weight against a
// streaming-read bandwidth measured here, and the floor (weight bytes / bandwidth). M=64 prints
// GFLOP/s beside the same floor.
// Usage: int8_matmul_bench [--threads N] [--quick] [--decode-only]   (TESSERA_CPU_ISA to force)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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
#include "src/backend/cpu_int8.h"
#include "src/backend/cpu_matmul.h"
#include "tessera/backend/backend.h"
#include "tessera/core/tensor.h"
#include "tessera/core/thread_pool.h"

namespace {

using tessera::DType;
using tessera::Tensor;
using tessera::backend::Int8Mode;
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

  // INT8 weights: random codes, per-channel scales ~ amax / 127.
  const int64_t i8_bytes = n * k;
  const int64_t i8_copies = copies_for(i8_bytes);
  std::vector<int8_t> w8(static_cast<size_t>(i8_bytes * i8_copies));
  for (int64_t i = 0; i < i8_bytes; ++i) w8[i] = static_cast<int8_t>(rng());
  for (int64_t i = 1; i < i8_copies; ++i)
    std::memcpy(w8.data() + i * i8_bytes, w8.data(), i8_bytes);
  std::vector<float> scale(n, 0.05f / 127.0f);
  Tensor st(scale.data(), DType::kF32, {n});
  tessera::backend::CpuInt8Matmul int8;
  double base = 0.0;
  for (Int8Mode mode : {Int8Mode::kW8A8, Int8Mode::kWeightOnly}) {
    const double sec = tessera::bench::time_calls(i8_copies, quick, [&](int64_t i) {
      Tensor wt(w8.data() + (i % i8_copies) * i8_bytes, DType::kI8, {n, k});
      if (!int8.run(pool, xt, wt, st, mode, ot).ok()) std::abort();
    });
    if (mode == Int8Mode::kW8A8) base = sec;
    tessera::bench::print_matmul_row(mode == Int8Mode::kW8A8 ? "int8 w8a8" : "int8 weight-only", m,
                                     n, k, i8_bytes + 4 * n, sec, bw, base, "w8a8");
  }
  w8.clear();
  w8.shrink_to_fit();

  tessera::backend::CpuMatmul mm;
  for (DType type : {DType::kF32, DType::kQ8_0}) {
    const tessera::kernels::ElemTraits t = tessera::kernels::elem_traits(type);
    const int64_t row_bytes = k / t.block_elems * t.block_bytes;
    const int64_t w_bytes = n * row_bytes;
    const int64_t copies = copies_for(w_bytes);
    std::vector<char> w(static_cast<size_t>(w_bytes * copies));
    std::vector<float> row(k);
    for (int64_t j = 0; j < n; ++j) {
      for (float& v : row) v = 0.05f * dist(rng);
      if (type == DType::kF32) {
        std::memcpy(w.data() + j * row_bytes, row.data(), row_bytes);
      } else {
        tessera::kernels::ref::quantize_row(type, row.data(), w.data() + j * row_bytes, k);
      }
    }
    for (int64_t i = 1; i < copies; ++i) std::memcpy(w.data() + i * w_bytes, w.data(), w_bytes);
    const double sec = tessera::bench::time_calls(copies, quick, [&](int64_t i) {
      Tensor wt(w.data() + (i % copies) * w_bytes, type, {n, k});
      if (!mm.run(pool, xt, wt, ot).ok()) std::abort();
    });
    tessera::bench::print_matmul_row(std::string(tessera::dtype_name(type)).c_str(), m, n, k,
                                     w_bytes, sec, bw, base, "w8a8");
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
  const Shape shapes[] = {{4096, 4096}, {1024, 4096}, {14336, 4096}, {4096, 14336}};
  for (int64_t m : {int64_t{1}, int64_t{64}}) {
    if (m > 1 && !prefill) break;
    for (const Shape& s : shapes) run_shape(pool, m, s.n, s.k, bw, quick);
  }
  return 0;
}

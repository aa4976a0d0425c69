// mla_batched_bench: MLA's absorbed per-head products at DeepSeek-V3 shapes (128 heads,
// kv_lora_rank 512, qk_nope 128, v 128; f32 W_UK^T / W_UV as the model keeps them) on the CPU
// backend: the per-head loop of 2 x 128 matmul calls against two matmul_batched calls, same
// run, same views as deepseek_mla.cc. Prints ms per layer, GFLOP/s and the weight-read floor
// (64 MiB of f32 weights per layer over the measured read bandwidth).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "bench/cpu_bench_util.h"
#include "src/apps/app_model.h"
#include "tessera/backend/backend.h"
#include "tessera/core/tensor.h"

namespace {

using namespace tessera;
using Clock = std::chrono::steady_clock;
using tessera::bench::seconds_since;

constexpr int64_t kHeads = 128, kRank = 512, kNope = 128, kRope = 64, kV = 128;
constexpr int64_t kQk = kNope + kRope, kLat = kRank + kRope;

void fill(OwnedTensor& t, uint64_t seed) {
  float* p = t.data_as<float>();
  for (int64_t i = 0; i < t.view().numel(); ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = static_cast<float>(static_cast<int64_t>(seed >> 40) - (1 << 23)) / (1 << 23);
  }
}

Tensor view2(const OwnedTensor& base, int64_t offset, int64_t d0, int64_t d1, int64_t s0) {
  return Tensor(const_cast<float*>(base.data_as<float>()) + offset, DType::kF32, {d0, d1})
      .with_strides({s0 * 4, 4});
}
Tensor view3(const OwnedTensor& base, int64_t d0, int64_t d1, int64_t d2, int64_t s0, int64_t s1) {
  return Tensor(const_cast<float*>(base.data_as<float>()), DType::kF32, {d0, d1, d2})
      .with_strides({s0 * 4, s1 * 4, 4});
}

template <typename F>
double best_ms(int reps, const F& f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, 1e3 * seconds_since(t0));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"MLA absorbed per-head matmuls: per-head loop vs matmul_batched (CPU)"};
  int threads = 2, reps = 5;
  app.add_option("--threads,-t", threads, "CPU threads (0: all cores)")->capture_default_str();
  app.add_option("--reps", reps, "timed runs per case (best is reported)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  Result<std::unique_ptr<backend::Backend>> be_or = apps::open_backend("cpu", threads);
  if (!be_or.ok()) {
    fmt::print(stderr, "error: {}\n", be_or.status().message());
    return 1;
  }
  backend::Backend& be = **be_or;
  const int bw_threads =
      threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  const double bandwidth = tessera::bench::read_bandwidth_gbs(bw_threads);
  OwnedTensor w_uk_t(DType::kF32, {kHeads, kRank, kNope}), w_uv(DType::kF32, {kHeads, kV, kRank});
  fill(w_uk_t, 1);
  fill(w_uv, 2);
  const double weight_bytes = 4.0 * (w_uk_t.view().numel() + w_uv.view().numel());
  fmt::print(
      "MLA absorbed products, DeepSeek-V3 shapes (H {}, r {}, nope {}, v {}), f32 weights, "
      "{} threads; read bandwidth {:.1f} GB/s, weight floor {:.2f} ms/layer\n",
      kHeads, kRank, kNope, kV, bw_threads, bandwidth, weight_bytes / bandwidth / 1e6);
  for (int64_t t : {1, 64}) {
    OwnedTensor q(DType::kF32, {t, kHeads * kQk}), q_abs(DType::kF32, {t, kHeads * kLat});
    OwnedTensor lat(DType::kF32, {t, kHeads * kRank}), attn(DType::kF32, {t, kHeads * kV});
    OwnedTensor q_abs2(DType::kF32, {t, kHeads * kLat}), attn2(DType::kF32, {t, kHeads * kV});
    fill(q, 3);
    fill(lat, 4);
    auto loop = [&] {
      for (int64_t h = 0; h < kHeads; ++h) {
        (void)be.matmul(view2(q, h * kQk, t, kNope, kHeads * kQk), w_uk_t.view().row(h),
                        view2(q_abs, h * kLat, t, kRank, kHeads * kLat));
      }
      for (int64_t h = 0; h < kHeads; ++h) {
        (void)be.matmul(view2(lat, h * kRank, t, kRank, kHeads * kRank), w_uv.view().row(h),
                        view2(attn, h * kV, t, kV, kHeads * kV));
      }
    };
    auto batched = [&] {
      Status s = be.matmul_batched(view3(q, kHeads, t, kNope, kQk, kHeads * kQk), w_uk_t.view(),
                                   view3(q_abs2, kHeads, t, kRank, kLat, kHeads * kLat));
      if (s.ok()) {
        s = be.matmul_batched(view3(lat, kHeads, t, kRank, kRank, kHeads * kRank), w_uv.view(),
                              view3(attn2, kHeads, t, kV, kV, kHeads * kV));
      }
      if (!s.ok()) fmt::print(stderr, "matmul_batched: {}\n", s.message());
    };
    loop();
    batched();
    double max_diff = 0.0;
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t h = 0; h < kHeads; ++h) {
        for (int64_t j = 0; j < kRank; ++j) {
          const int64_t o = i * kHeads * kLat + h * kLat + j;
          max_diff = std::max<double>(
              max_diff, std::fabs(q_abs.data_as<float>()[o] - q_abs2.data_as<float>()[o]));
        }
      }
      for (int64_t j = 0; j < kHeads * kV; ++j) {
        const int64_t o = i * kHeads * kV + j;
        max_diff = std::max<double>(
            max_diff, std::fabs(attn.data_as<float>()[o] - attn2.data_as<float>()[o]));
      }
    }
    const double flops = 2.0 * 2.0 * kHeads * t * kRank * kNope;  // both products, same size
    const double ms_loop = best_ms(reps, loop), ms_batched = best_ms(reps, batched);
    fmt::print(
        "t {:3}: per-head loop {:8.2f} ms ({:6.1f} GFLOP/s)   matmul_batched {:8.2f} ms ({:6.1f} "
        "GFLOP/s)   speed-up {:.2f}x   max |diff| {:.1e}\n",
        t, ms_loop, flops / ms_loop / 1e6, ms_batched, flops / ms_batched / 1e6,
        ms_loop / ms_batched, max_diff);
  }
  return 0;
}

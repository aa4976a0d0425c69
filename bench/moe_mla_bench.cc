// moe_mla_bench: one DeepSeekMoE layer and one MLA decode step on the CPU backend at
// DeepSeek-V2-Lite's real shapes (hidden 2048; 64 routed experts top-6 + 2 shared,
// moe_intermediate 1408; 16 heads, kv_lora_rank 512, qk_nope 128, qk_rope 64, v 128), random
// bf16 weights, f32 latent cache, batch 1 / 16 / 64. The op sequence is DeepseekModel's
// (moe_block.cc, deepseek_mla.cc absorbed path). Prints one JSON object: tokens/s and weight +
// cache bytes moved per token beside the measured memory bandwidth (the decode floor).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
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

constexpr int64_t kHidden = 2048, kExperts = 64, kTopK = 6, kShared = 2, kInter = 1408;
constexpr int64_t kHeads = 16, kRank = 512, kNope = 128, kRope = 64, kV = 128;
constexpr int64_t kQk = kNope + kRope, kLat = kRank + kRope;

uint64_t g_state = 0x9E3779B97F4A7C15ull;
float next_uniform() {  // xorshift64*, in [-1, 1)
  g_state ^= g_state >> 12;
  g_state ^= g_state << 25;
  g_state ^= g_state >> 27;
  const uint64_t r = g_state * 2685821657736338717ull;
  return static_cast<float>(r >> 40) / static_cast<float>(1 << 23) - 1.0f;
}

OwnedTensor random_tensor(DType dtype, std::initializer_list<int64_t> shape, float scale) {
  OwnedTensor t(dtype, shape);
  const int64_t n = t.view().numel();
  if (dtype == DType::kBF16) {
    uint16_t* p = t.data_as<uint16_t>();
    for (int64_t i = 0; i < n; ++i) {
      float f = next_uniform() * scale;
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      p[i] = static_cast<uint16_t>(bits >> 16);
    }
  } else {
    float* p = t.data_as<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = next_uniform() * scale;
  }
  return t;
}

#define CHECK_OK(expr)                                            \
  do {                                                            \
    Status s_ = (expr);                                           \
    if (!s_.ok()) {                                               \
      fmt::print(stderr, "error: {}: {}\n", #expr, s_.message()); \
      std::exit(1);                                               \
    }                                                             \
  } while (0)

struct MoeWeights {
  OwnedTensor router = random_tensor(DType::kF32, {kExperts, kHidden}, 0.05f);
  OwnedTensor w_gate = random_tensor(DType::kBF16, {kExperts, kInter, kHidden}, 0.02f);
  OwnedTensor w_up = random_tensor(DType::kBF16, {kExperts, kInter, kHidden}, 0.02f);
  OwnedTensor w_down = random_tensor(DType::kBF16, {kExperts, kHidden, kInter}, 0.02f);
  OwnedTensor s_gate = random_tensor(DType::kBF16, {kShared * kInter, kHidden}, 0.02f);
  OwnedTensor s_up = random_tensor(DType::kBF16, {kShared * kInter, kHidden}, 0.02f);
  OwnedTensor s_down = random_tensor(DType::kBF16, {kHidden, kShared* kInter}, 0.02f);
};

// One MoE layer over t tokens; returns the weight bytes it had to read (distinct experts).
int64_t run_moe(backend::Backend& be, MoeWeights& w, const Tensor& xn, int64_t t) {
  OwnedTensor logits(DType::kF32, {t, kExperts}), ids(DType::kI32, {t, kTopK}),
      wts(DType::kF32, {t, kTopK});
  OwnedTensor g(DType::kF32, {t, kTopK, kInter}), u(DType::kF32, {t, kTopK, kInter});
  OwnedTensor d(DType::kF32, {t * kTopK, 1, kHidden});
  OwnedTensor sg(DType::kF32, {t, kShared * kInter}), su(DType::kF32, {t, kShared * kInter});
  OwnedTensor out(DType::kF32, {t, kHidden});
  backend::MoeRouteParams p;
  p.top_k = kTopK;
  CHECK_OK(be.matmul(xn, w.router.view(), logits.view()));
  CHECK_OK(be.moe_route(logits.view(), Tensor(), p, ids.view(), wts.view()));
  CHECK_OK(be.moe_grouped_matmul(xn, w.w_gate.view(), ids.view(), g.view()));
  CHECK_OK(be.moe_grouped_matmul(xn, w.w_up.view(), ids.view(), u.view()));
  Tensor act = g.view().reshape({t * kTopK, kInter});
  CHECK_OK(be.silu_mul(act, u.view().reshape({t * kTopK, kInter}), act));
  CHECK_OK(be.moe_grouped_matmul(act, w.w_down.view(),
                                 Tensor(ids.view().data(), DType::kI32, {t * kTopK, 1}), d.view()));
  float* o = out.data_as<float>();  // the weighted combine, as moe_block.cc does it
  for (int64_t r = 0; r < t; ++r) {
    for (int64_t c = 0; c < kHidden; ++c) o[r * kHidden + c] = 0.0f;
    for (int64_t j = 0; j < kTopK; ++j) {
      const float gw = wts.data_as<float>()[r * kTopK + j];
      const float* src = d.data_as<float>() + (r * kTopK + j) * kHidden;
      for (int64_t c = 0; c < kHidden; ++c) o[r * kHidden + c] += gw * src[c];
    }
  }
  CHECK_OK(be.matmul(xn, w.s_gate.view(), sg.view()));
  CHECK_OK(be.matmul(xn, w.s_up.view(), su.view()));
  CHECK_OK(be.silu_mul(sg.view(), su.view(), sg.view()));
  CHECK_OK(be.matmul(sg.view(), w.s_down.view(), out.view()));
  std::set<int32_t> active(ids.data_as<int32_t>(), ids.data_as<int32_t>() + t * kTopK);
  const int64_t expert_bytes = 3 * kInter * kHidden * 2;
  return static_cast<int64_t>(active.size()) * expert_bytes + kExperts * kHidden * 4 +
         3 * kShared * kInter * kHidden * 2;
}

struct MlaWeights {
  OwnedTensor q_proj = random_tensor(DType::kBF16, {kHeads * kQk, kHidden}, 0.02f);
  OwnedTensor kv_a = random_tensor(DType::kBF16, {kLat, kHidden}, 0.02f);
  OwnedTensor kv_norm = random_tensor(DType::kF32, {kRank}, 1.0f);
  OwnedTensor w_uk_t = random_tensor(DType::kF32, {kHeads, kRank, kNope}, 0.05f);
  OwnedTensor w_uv = random_tensor(DType::kF32, {kHeads, kV, kRank}, 0.05f);
  OwnedTensor o_proj = random_tensor(DType::kBF16, {kHidden, kHeads* kV}, 0.02f);
};

Tensor strided2(const Tensor& base, int64_t offset, int64_t d0, int64_t d1, int64_t s0) {
  return Tensor(base.data_as<float>() + offset, DType::kF32, {d0, d1}).with_strides({s0 * 4, 4});
}

// One absorbed MLA decode step for b sequences of `ctx` cached tokens each; returns the bytes
// read (weights + latent cache).
int64_t run_mla_decode(backend::Backend& be, MlaWeights& w, const Tensor& xn, int64_t b,
                       int32_t ctx, int32_t block_size, Tensor cache_k, Tensor cache_v) {
  OwnedTensor q(DType::kF32, {b, kHeads * kQk}), c(DType::kF32, {b, kLat});
  OwnedTensor q_abs(DType::kF32, {b, kHeads, kLat}), o_lat(DType::kF32, {b, kHeads, kRank});
  OwnedTensor attn(DType::kF32, {b, kHeads * kV}), out(DType::kF32, {b, kHidden});
  std::vector<int32_t> pos(b, ctx - 1), qs(b + 1), lens(b, ctx), slots(b);
  const int32_t per_seq = (ctx + block_size - 1) / block_size;
  std::vector<int32_t> tables(b * per_seq);
  for (int64_t s = 0; s < b; ++s) {
    qs[s + 1] = static_cast<int32_t>(s + 1);
    for (int32_t j = 0; j < per_seq; ++j) tables[s * per_seq + j] = s * per_seq + j;
    slots[s] = tables[s * per_seq + (ctx - 1) / block_size] * block_size + (ctx - 1) % block_size;
  }
  backend::RopeParams rope;
  rope.style = backend::RopeParams::Style::kInterleaved;
  rope.rot_dim = kRope;
  CHECK_OK(be.matmul(xn, w.q_proj.view(), q.view()));
  CHECK_OK(be.rope(Tensor(q.data_as<float>() + kNope, DType::kF32, {b, kHeads, kRope})
                       .with_strides({kHeads * kQk * 4, kQk * 4, 4}),
                   pos, rope));
  CHECK_OK(be.matmul(xn, w.kv_a.view(), c.view()));
  Tensor c_kv = strided2(c.view(), 0, b, kRank, kLat);
  CHECK_OK(be.rms_norm(c_kv, w.kv_norm.view(), 1e-6f, c_kv));
  CHECK_OK(be.kv_append(
      c.view().reshape({b, 1, kLat}),
      Tensor(c.data_as<float>(), DType::kF32, {b, 1, kRank}).with_strides({kLat * 4, kLat * 4, 4}),
      slots, cache_k, cache_v));
  for (int64_t h = 0; h < kHeads; ++h) {
    CHECK_OK(be.matmul(strided2(q.view(), h * kQk, b, kNope, kHeads * kQk), w.w_uk_t.view().row(h),
                       strided2(q_abs.view(), h * kLat, b, kRank, kHeads * kLat)));
  }
  Tensor tables_t(tables.data(), DType::kI32, {b, per_seq});
  CHECK_OK(
      be.paged_attention(q_abs.view(), cache_k, cache_v, qs, lens, tables_t, 0.07f, o_lat.view()));
  for (int64_t h = 0; h < kHeads; ++h) {
    CHECK_OK(be.matmul(strided2(o_lat.view(), h * kRank, b, kRank, kHeads * kRank),
                       w.w_uv.view().row(h), strided2(attn.view(), h * kV, b, kV, kHeads * kV)));
  }
  CHECK_OK(be.matmul(attn.view(), w.o_proj.view(), out.view()));
  const int64_t weights = (kHeads * kQk + kLat) * kHidden * 2 + kHeads * kRank * (kNope + kV) * 4 +
                          kHidden * kHeads * kV * 2;
  return weights + b * int64_t{ctx} * kLat * 4;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"DeepSeekMoE layer and MLA decode step at DeepSeek-V2-Lite shapes (CPU)"};
  int threads = 0, ctx = 1024, reps = 3;
  std::string out_path;
  app.add_option("--threads,-t", threads, "CPU threads (0: all cores)");
  app.add_option("--ctx", ctx, "cached tokens per sequence for the MLA decode step")
      ->capture_default_str();
  app.add_option("--reps", reps, "timed runs per case (best is reported)")->capture_default_str();
  app.add_option("--out", out_path, "also write the JSON here");
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
  const auto t_init = Clock::now();
  MoeWeights moe;
  MlaWeights mla;
  const int32_t block_size = 16;
  const int64_t max_b = 64;
  const int64_t blocks = max_b * ((ctx + block_size - 1) / block_size);
  OwnedTensor cache = random_tensor(DType::kF32, {blocks, block_size, 1, kLat}, 1.0f);
  Tensor cache_k = cache.view();
  Tensor cache_v = Tensor(cache_k.data(), DType::kF32, {blocks, block_size, 1, kRank})
                       .with_strides({cache_k.stride_bytes(0), cache_k.stride_bytes(1),
                                      cache_k.stride_bytes(2), 4});
  fmt::print(stderr, "weights ready in {:.1f} s; bandwidth {:.1f} GB/s\n", seconds_since(t_init),
             bandwidth);

  nlohmann::json result;
  result["shapes"] =
      "DeepSeek-V2-Lite: hidden 2048, 64 experts top-6 + 2 shared, moe_inter 1408, "
      "16 heads, kv_lora 512, qk_nope 128, qk_rope 64, v 128";
  result["weights"] = "random bf16 (router, w_uk/w_uv and rms weights f32); f32 latent cache";
  result["threads"] = bw_threads;
  result["mla_context"] = ctx;
  result["bandwidth_gbs"] = bandwidth;
  for (int64_t b : {1, 16, 64}) {
    OwnedTensor xn = random_tensor(DType::kF32, {b, kHidden}, 1.0f);
    double moe_best = 1e30, mla_best = 1e30;
    int64_t moe_bytes = 0, mla_bytes = 0;
    run_moe(be, moe, xn.view(), b);  // warm-up
    for (int r = 0; r < reps; ++r) {
      auto t0 = Clock::now();
      moe_bytes = run_moe(be, moe, xn.view(), b);
      moe_best = std::min(moe_best, seconds_since(t0));
      t0 = Clock::now();
      mla_bytes = run_mla_decode(be, mla, xn.view(), b, ctx, block_size, cache_k, cache_v);
      mla_best = std::min(mla_best, seconds_since(t0));
    }
    nlohmann::json row;
    row["batch"] = b;
    row["moe_ms"] = moe_best * 1e3;
    row["moe_tokens_per_s"] = b / moe_best;
    row["moe_bytes_per_token"] = moe_bytes / b;
    row["moe_floor_ms"] = moe_bytes / (bandwidth * 1e9) * 1e3;
    row["mla_ms"] = mla_best * 1e3;
    row["mla_tokens_per_s"] = b / mla_best;
    row["mla_bytes_per_token"] = mla_bytes / b;
    row["mla_floor_ms"] = mla_bytes / (bandwidth * 1e9) * 1e3;
    result["cases"].push_back(row);
    fmt::print(stderr,
               "batch {:3}: MoE {:8.2f} ms ({:8.1f} tok/s, floor {:6.2f} ms)  MLA decode {:8.2f} "
               "ms ({:8.1f} tok/s, floor {:6.2f} ms)\n",
               b, moe_best * 1e3, b / moe_best, row["moe_floor_ms"].get<double>(), mla_best * 1e3,
               b / mla_best, row["mla_floor_ms"].get<double>());
  }
  const std::string text = result.dump(1);
  fmt::print("{}\n", text);
  if (!out_path.empty()) {
    FILE* f = std::fopen(out_path.c_str(), "w");
    if (f == nullptr) return 1;
    std::fputs(text.c_str(), f);
    std::fputs("\n", f);
    std::fclose(f);
  }
  return 0;
}

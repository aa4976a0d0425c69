// model_decode_bench: one decode step of a Llama-3-8B-shaped model with random weights (no
// checkpoint needed) on any backend, beside its bandwidth floor. Prefills --context tokens,
// then times --decode greedy steps at batch 1. The floor is the bytes a step must read (every
// weight but the embedding table, plus the KV cache so far) over the backend's measured copy
// bandwidth; the fraction achieved is what the ">= 80% at batch 1" target reads.
//   model_decode_bench --backend cuda                  (H200: all 32 layers, bf16)
//   model_decode_bench --backend cpu --layers 2        (a CPU rehearsal at 8B layer shapes)
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/synthetic_weights.h"
#include "tessera/engine/pretrained.h"
#include "tessera/model/llama.h"
#include "tessera/sampling/sampler.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Read + write bytes per second of backend->copy over a 2 x 512 MiB pair, best of 5.
tessera::Result<double> copy_bandwidth(tessera::backend::Backend& be) {
  using namespace tessera;
  const int64_t bytes = 512ll << 20;
  TESSERA_ASSIGN_OR_RETURN(backend::BackendTensor a, be.allocate(DType::kU8, {bytes}));
  TESSERA_ASSIGN_OR_RETURN(backend::BackendTensor b, be.allocate(DType::kU8, {bytes}));
  TESSERA_RETURN_IF_ERROR(be.copy(a.view, b.view));  // warm-up (first touch)
  TESSERA_RETURN_IF_ERROR(be.synchronize());
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    TESSERA_RETURN_IF_ERROR(be.copy(a.view, b.view));
    TESSERA_RETURN_IF_ERROR(be.synchronize());
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * static_cast<double>(bytes) / best;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tessera;
  CLI::App app{"decode step of a Llama-3-8B-shaped model with random weights, vs its floor"};
  std::string backend_name = "cpu", dtype_name_arg = "bf16";
  int threads = 0, layers = 32, context = 1024, decode = 16;
  app.add_option("--backend", backend_name, "cpu | reference | cuda | emulated")
      ->capture_default_str();
  app.add_option("--threads,-t", threads, "CPU threads (0: all cores)");
  app.add_option("--layers", layers, "transformer layers (8B has 32)")->capture_default_str();
  app.add_option("--dtype", dtype_name_arg, "weight dtype: bf16 | f16 | f32")
      ->capture_default_str();
  app.add_option("--context", context, "tokens prefilled before decoding")->capture_default_str();
  app.add_option("--decode", decode, "decode steps timed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (layers < 1 || context < 1 || decode < 1) {
    fmt::print(stderr, "error: need --layers, --context and --decode >= 1\n");
    return 1;
  }
  const DType wdtype = dtype_name_arg == "f32"   ? DType::kF32
                       : dtype_name_arg == "f16" ? DType::kF16
                                                 : DType::kBF16;

  Result<std::unique_ptr<backend::Backend>> be = engine::open_backend(backend_name, threads);
  if (!be.ok()) {
    fmt::print(stderr, "error: {}\n", be.status().message());
    return 1;
  }
  const model::ModelConfig config = bench::llama3_8b_config(layers);
  const auto t_gen = Clock::now();
  auto weights = std::make_shared<bench::SyntheticWeights>(config, wdtype);
  const double gen_s = seconds_since(t_gen);
  model::LlamaOptions options;
  options.max_context = context + decode;
  options.max_chunk = std::min(context, 512);
  options.kv_dtype = DType::kF16;
  const auto t_load = Clock::now();
  auto created = model::LlamaModel::create(config, weights, be->get(), options);
  if (!created.ok()) {
    fmt::print(stderr, "error: {}\n", created.status().message());
    return 1;
  }
  model::LlamaModel& m = **created;
  const double load_s = seconds_since(t_load);
  Result<double> bw = copy_bandwidth(**be);
  if (!bw.ok()) {
    fmt::print(stderr, "error: bandwidth probe: {}\n", bw.status().message());
    return 1;
  }

  std::vector<int32_t> prompt(context);
  for (int i = 0; i < context; ++i) prompt[i] = static_cast<int32_t>((i * 7919) % 128000);
  OwnedTensor logits(DType::kF32, {1, config.vocab_size});
  std::span<const float> row(logits.data_as<float>(), config.vocab_size);
  auto t0 = Clock::now();
  Status s = m.forward(prompt, 0, false, logits.view());
  const double prefill_s = seconds_since(t0);
  std::vector<double> steps;
  for (int i = 0; i < decode && s.ok(); ++i) {
    const int32_t next = sampling::argmax(row);
    t0 = Clock::now();
    s = m.forward(std::span<const int32_t>(&next, 1), m.num_cached_tokens(), false,
                  logits.view());
    steps.push_back(seconds_since(t0));
  }
  if (!s.ok()) {
    fmt::print(stderr, "error: {}\n", s.message());
    return 1;
  }
  std::sort(steps.begin(), steps.end());
  const double median_s = steps[steps.size() / 2];
  const int64_t kv_bytes = static_cast<int64_t>(context) * layers * 2 *
                           config.num_key_value_heads * config.head_dim * 2;
  const int64_t step_bytes = weights->total_bytes() - weights->embedding_bytes() + kv_bytes;
  const double floor_s = static_cast<double>(step_bytes) / *bw;
  nlohmann::json out = {
      {"bench", "model_decode"},
      {"shape", "llama3-8b"},
      {"layers", layers},
      {"weight_dtype", dtype_name(wdtype)},
      {"kv_dtype", "f16"},
      {"backend", (*be)->name()},
      {"context", context},
      {"generate_s", gen_s},
      {"load_s", load_s},
      {"prefill_s", prefill_s},
      {"prefill_tok_s", context / prefill_s},
      {"decode_step_ms_median", median_s * 1e3},
      {"decode_step_ms_best", steps.front() * 1e3},
      {"copy_bandwidth_gb_s", *bw / 1e9},
      {"step_bytes", step_bytes},
      {"floor_ms", floor_s * 1e3},
      {"fraction_of_floor", floor_s / median_s},
  };
  fmt::print("{}\n", out.dump());
  return 0;
}

// llama_decode_bench: prefill and decode speed of LlamaModel on one sequence, printed as one
// JSON object (bench/compare_llamacpp.py runs it beside llama.cpp). Prefill runs --prefill
// fixed pseudo-random tokens in one forward; decode then feeds back the argmax --decode times.
// The floor printed beside decode is the weight bytes read per token (decode is memory bound).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/cpu_bench_util.h"
#include "src/apps/app_model.h"
#include "tessera/model/model_loader.h"
#include "tessera/sampling/sampler.h"

namespace {

using Clock = std::chrono::steady_clock;
using tessera::bench::seconds_since;

}  // namespace

int main(int argc, char** argv) {
  using namespace tessera;
  CLI::App app{"LlamaModel prefill / decode throughput"};
  std::string model_path;
  std::string backend_name = "cpu";
  int threads = 0, prefill = 512, decode = 128, repeat = 1;
  app.add_option("--model,-m", model_path, "a .gguf file or an HF directory")->required();
  app.add_option("--threads,-t", threads, "CPU threads (0: all cores)");
  app.add_option("--prefill", prefill, "prompt tokens")->capture_default_str();
  app.add_option("--decode", decode, "generated tokens")->capture_default_str();
  app.add_option("--repeat", repeat, "runs; the best of each phase is reported")
      ->capture_default_str();
  app.add_option("--backend", backend_name, "cpu | reference")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (prefill < 1 || decode < 0 || repeat < 1) {
    fmt::print(stderr, "error: need --prefill >= 1, --decode >= 0, --repeat >= 1\n");
    return 1;
  }

  Result<std::unique_ptr<backend::Backend>> be = apps::open_backend(backend_name, threads);
  if (!be.ok()) {
    fmt::print(stderr, "error: {}\n", be.status().message());
    return 1;
  }
  model::LlamaOptions options;
  options.max_context = prefill + decode;
  options.max_chunk = prefill;
  const auto t_load = Clock::now();
  Result<model::LoadedModel> loaded = model::load_model(model_path, be->get(), options);
  if (!loaded.ok()) {
    fmt::print(stderr, "error: {}\n", loaded.status().message());
    return 1;
  }
  const double load_s = seconds_since(t_load);
  model::Model& m = *loaded->model;
  const int64_t vocab = m.vocab_size();

  std::vector<int32_t> prompt(prefill);
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (int32_t& t : prompt) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<int32_t>((state >> 33) % static_cast<uint64_t>(vocab));
  }
  OwnedTensor logits(DType::kF32, {1, vocab});
  std::span<const float> row(logits.data_as<float>(), vocab);

  double best_prefill = 1e30, best_decode = 1e30;
  for (int r = 0; r < repeat; ++r) {
    m.reset();
    auto t0 = Clock::now();
    Status s = m.forward(prompt, 0, false, logits.view());
    best_prefill = std::min(best_prefill, seconds_since(t0));
    t0 = Clock::now();
    for (int i = 0; i < decode && s.ok(); ++i) {
      const int32_t next = sampling::argmax(row);
      s = m.forward(std::span<const int32_t>(&next, 1), m.num_cached_tokens(), false,
                    logits.view());
    }
    if (!s.ok()) {
      fmt::print(stderr, "error: {}\n", s.message());
      return 1;
    }
    if (decode > 0) best_decode = std::min(best_decode, seconds_since(t0));
  }

  int64_t weight_bytes = 0;
  if (loaded->gguf) {
    for (const auto& t : loaded->gguf->tensors()) weight_bytes += static_cast<int64_t>(t.nbytes);
  }
  const double decode_tps = decode > 0 ? decode / best_decode : 0.0;
  nlohmann::json out = {
      {"bench", "llama_decode"},
      {"model", model_path},
      {"backend", (*be)->name()},
      {"threads", threads},
      {"load_s", load_s},
      {"prefill_tokens", prefill},
      {"prefill_s", best_prefill},
      {"prefill_tok_s", prefill / best_prefill},
      {"decode_tokens", decode},
      {"decode_s", decode > 0 ? best_decode : 0.0},
      {"decode_tok_s", decode_tps},
      // Floor: decode streams every weight once per token.
      {"weight_bytes", weight_bytes},
      {"decode_weight_gb_s", weight_bytes * decode_tps / 1e9},
  };
  fmt::print("{}\n", out.dump());
  return 0;
}

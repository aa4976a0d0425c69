// Engine throughput on the default model (SmolLM2-135M Q4_1): output tokens/s with 1, 4, 16 and
// 64 concurrent requests (128 prompt + 128 output tokens, ignore_eos) under continuous batching,
// against the same engine serving one request at a time; and the prefix cache's gain (TTFT and
// throughput) for requests sharing a ~1,000-token system prompt, cache on vs off.
// Prints a table; writes JSON (default bench/results/engine_cpu_smollm2_<date>.json).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tessera/engine/engine.h"
#include "tessera/engine/pretrained.h"

namespace {

using namespace tessera;
using Clock = std::chrono::steady_clock;

double secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct RunResult {
  int num_requests = 0;
  int64_t output_tokens = 0;
  double wall_s = 0.0;
  double mean_ttft_s = 0.0;
  int64_t cached_prompt_tokens = 0;
  double tokens_per_s() const { return output_tokens / wall_s; }
};

// Submits every prompt at once (wave = all) or one after another (wave = 1) and waits.
RunResult run(engine::Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
              int max_tokens, bool one_at_a_time) {
  std::mutex mu;
  std::condition_variable cv;
  int open = 0;
  RunResult r;
  r.num_requests = static_cast<int>(prompts.size());
  std::vector<Clock::time_point> submitted(prompts.size()), first(prompts.size());
  std::vector<bool> got_first(prompts.size(), false);
  auto submit = [&](size_t i) {
    engine::GenerateRequest req;
    req.prompt_tokens = prompts[i];
    req.sampling.temperature = 0.0f;
    req.max_tokens = max_tokens;
    req.ignore_eos = true;
    {
      std::lock_guard<std::mutex> lock(mu);
      ++open;
      submitted[i] = Clock::now();
    }
    Result<engine::RequestId> id = engine.submit(req, [&, i](engine::RequestOutput out) {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& d : out.deltas) r.output_tokens += d.token_ids.size();
      if (!got_first[i] && out.num_generated_tokens > 0) {
        got_first[i] = true;
        first[i] = Clock::now();
        r.cached_prompt_tokens += out.num_cached_prompt_tokens;
      }
      if (out.finished && --open == 0) cv.notify_all();
    });
    if (!id.ok()) {
      fmt::print(stderr, "submit failed: {}\n", id.status().message());
      std::exit(1);
    }
  };
  auto wait_all = [&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return open == 0; });
  };
  const auto t0 = Clock::now();
  for (size_t i = 0; i < prompts.size(); ++i) {
    submit(i);
    if (one_at_a_time) wait_all();
  }
  wait_all();
  r.wall_s = secs(t0, Clock::now());
  double ttft = 0.0;
  for (size_t i = 0; i < prompts.size(); ++i) ttft += secs(submitted[i], first[i]);
  r.mean_ttft_s = ttft / prompts.size();
  return r;
}

std::vector<int32_t> random_tokens(std::mt19937& rng, int n, int64_t vocab) {
  std::vector<int32_t> t(n);
  // Skip the low ids (special tokens in SmolLM2's vocabulary).
  for (int32_t& id : t) id = static_cast<int32_t>(100 + rng() % (vocab - 100));
  return t;
}

std::string today() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d", std::gmtime(&now));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"engine throughput: continuous batching and prefix caching"};
  std::string model_path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string out_path = "bench/results/engine_cpu_smollm2_" + today() + ".json";
  int threads = 2;
  std::vector<int> concurrency = {1, 4, 16, 64};
  int prompt_len = 128, output_len = 128, sequential_requests = 2;
  int system_len = 1000, prefix_requests = 4, prefix_output = 32;
  app.add_option("--model,-m", model_path)->capture_default_str();
  app.add_option("--threads,-t", threads)->capture_default_str();
  app.add_option("--concurrency", concurrency)->capture_default_str();
  app.add_option("--prompt-len", prompt_len)->capture_default_str();
  app.add_option("--output-len", output_len)->capture_default_str();
  app.add_option("--sequential-requests", sequential_requests)->capture_default_str();
  app.add_option("--system-len", system_len)->capture_default_str();
  app.add_option("--prefix-requests", prefix_requests)->capture_default_str();
  app.add_option("--out", out_path)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // rows appear as they are measured

  engine::PretrainedOptions options;
  options.threads = threads;
  options.max_context = 2048;
  options.kv_dtype = DType::kF16;
  Result<engine::Pretrained> p = engine::open_pretrained(model_path, options);
  if (!p.ok()) {
    fmt::print(stderr, "error: {}\n", p.status().message());
    return 1;
  }
  const int64_t vocab = p->model().vocab_size();
  const int max_c = *std::max_element(concurrency.begin(), concurrency.end());
  auto make_engine = [&](bool prefix_caching) {
    engine::EngineConfig config;
    config.max_num_seqs = std::max(max_c, 8);
    config.num_kv_blocks =
        std::max(max_c * (prompt_len + output_len), 2 * (system_len + 256)) / 16 + 64;
    config.enable_prefix_caching = prefix_caching;
    config.seed = 1;
    return engine::Engine::create(&p->model(), &*p->tokenizer, config).value();
  };
  std::mt19937 rng(2024);
  nlohmann::ordered_json json;
  json["model"] = model_path;
  json["threads"] = threads;
  json["prompt_tokens"] = prompt_len;
  json["output_tokens"] = output_len;
  unsigned ncpu = std::thread::hardware_concurrency();
  json["machine"] = fmt::format("x86_64, {} cpus", ncpu);
  json["date"] = today();

  // Continuous batching vs one at a time (prefix caching off: every prompt is distinct anyway).
  {
    auto engine = make_engine(false);
    std::vector<std::vector<int32_t>> warm = {random_tokens(rng, 16, vocab)};
    run(*engine, warm, 4, true);
    std::vector<std::vector<int32_t>> seq_prompts;
    for (int i = 0; i < sequential_requests; ++i) {
      seq_prompts.push_back(random_tokens(rng, prompt_len, vocab));
    }
    const RunResult seq = run(*engine, seq_prompts, output_len, true);
    fmt::print("{:>12} {:>9} {:>10} {:>12} {:>10} {:>9}\n", "mode", "requests", "wall s",
               "out tok/s", "TTFT s", "speedup");
    fmt::print("{:>12} {:>9} {:>10.2f} {:>12.1f} {:>10.3f} {:>9}\n", "one-at-time",
               seq.num_requests, seq.wall_s, seq.tokens_per_s(), seq.mean_ttft_s, "1.00x");
    json["one_at_a_time"] = {{"requests", seq.num_requests},
                             {"wall_s", seq.wall_s},
                             {"output_tokens_per_s", seq.tokens_per_s()},
                             {"mean_ttft_s", seq.mean_ttft_s}};
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (int c : concurrency) {
      std::vector<std::vector<int32_t>> prompts;
      for (int i = 0; i < c; ++i) prompts.push_back(random_tokens(rng, prompt_len, vocab));
      const RunResult r = run(*engine, prompts, output_len, false);
      const double speedup = r.tokens_per_s() / seq.tokens_per_s();
      fmt::print("{:>12} {:>9} {:>10.2f} {:>12.1f} {:>10.3f} {:>8.2f}x\n",
                 fmt::format("batched c={}", c), r.num_requests, r.wall_s, r.tokens_per_s(),
                 r.mean_ttft_s, speedup);
      rows.push_back({{"concurrency", c},
                      {"requests", r.num_requests},
                      {"wall_s", r.wall_s},
                      {"output_tokens_per_s", r.tokens_per_s()},
                      {"mean_ttft_s", r.mean_ttft_s},
                      {"speedup_vs_one_at_a_time", speedup}});
    }
    json["continuous_batching"] = rows;
    json["engine_stats_preemptions"] = engine->stats().num_preemptions;
  }

  // Prefix caching: a shared system prompt, then distinct questions, all submitted at once
  // after one warm-up request has seen the system prompt.
  {
    const std::vector<int32_t> system = random_tokens(rng, system_len, vocab);
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < prefix_requests; ++i) {
      std::vector<int32_t> q = system;
      std::vector<int32_t> tail = random_tokens(rng, 24, vocab);
      q.insert(q.end(), tail.begin(), tail.end());
      prompts.push_back(q);
    }
    std::vector<std::vector<int32_t>> warm = {system};
    warm[0].push_back(7);
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    fmt::print("\n{:>14} {:>9} {:>10} {:>12} {:>10} {:>14}\n", "prefix cache", "requests", "wall s",
               "out tok/s", "TTFT s", "cached tokens");
    for (bool on : {false, true}) {
      auto engine = make_engine(on);
      run(*engine, warm, 1, true);
      const RunResult r = run(*engine, prompts, prefix_output, false);
      fmt::print("{:>14} {:>9} {:>10.2f} {:>12.1f} {:>10.3f} {:>14}\n", on ? "on" : "off",
                 r.num_requests, r.wall_s, r.tokens_per_s(), r.mean_ttft_s, r.cached_prompt_tokens);
      rows.push_back({{"prefix_caching", on},
                      {"requests", r.num_requests},
                      {"system_prompt_tokens", system_len},
                      {"output_tokens", prefix_output},
                      {"wall_s", r.wall_s},
                      {"output_tokens_per_s", r.tokens_per_s()},
                      {"mean_ttft_s", r.mean_ttft_s},
                      {"cached_prompt_tokens", r.cached_prompt_tokens}});
    }
    json["prefix_cache"] = rows;
  }
  std::ofstream(out_path) << json.dump(2) << "\n";
  fmt::print("\nwrote {}\n", out_path);
  return 0;
}

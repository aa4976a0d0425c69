// Shared helpers of the engine tests: opening the tiny golden llama or SmolLM2 with an engine,
// and a thread-safe sink that gathers a request's outputs and waits for the final one.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tessera/engine/engine.h"
#include "tessera/engine/pretrained.h"

namespace tessera::engine::testing {

inline const std::string kTinyDir = std::string(TESSERA_FIXTURES_DIR) + "/llama_tiny/base";
inline const std::string kSmolLM2 =
    std::string(TESSERA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";

// "tiny" (Llama), "smollm2", or one of the MoE fixtures "deepseek_v3", "deepseek_v2", "mixtral"
// (tiny random transformers models, tests/fixtures/<which>_tiny; they ship no tokenizer, so
// the tiny Llama's byte-level tokenizer detokenizes their ids).
inline bool is_moe_fixture(const std::string& which) {
  return which == "deepseek_v3" || which == "deepseek_v2" || which == "mixtral";
}
inline std::string model_path(const std::string& which) {
  if (which == "smollm2") return kSmolLM2;
  if (is_moe_fixture(which)) return std::string(TESSERA_FIXTURES_DIR) + "/" + which + "_tiny";
  return kTinyDir;
}

// Everything one request produced, per choice.
struct Gathered {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::string> text;
  std::vector<std::optional<FinishReason>> finish;
  std::vector<std::string> stop_reason;
  int num_outputs = 0;
  int num_final = 0;
  int32_t num_cached_prompt_tokens = 0;
  Status error;
};

class Sink {
 public:
  explicit Sink(int n = 1) {
    g_.tokens.resize(n);
    g_.text.resize(n);
    g_.finish.resize(n);
    g_.stop_reason.resize(n);
  }
  OutputCallback callback() {
    return [this](RequestOutput out) {
      std::lock_guard<std::mutex> lock(mu_);
      ++g_.num_outputs;
      for (const CompletionDelta& d : out.deltas) {
        g_.tokens[d.index].insert(g_.tokens[d.index].end(), d.token_ids.begin(), d.token_ids.end());
        g_.text[d.index] += d.text;
        if (d.finish_reason) g_.finish[d.index] = d.finish_reason;
        if (!d.stop_reason.empty()) g_.stop_reason[d.index] = d.stop_reason;
      }
      g_.num_cached_prompt_tokens = out.num_cached_prompt_tokens;
      if (!out.error.ok()) g_.error = out.error;
      if (out.finished) {
        ++g_.num_final;
        cv_.notify_all();
      }
    };
  }
  // Waits (up to a minute) for the final output.
  Gathered wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const bool done =
        cv_.wait_for(lock, std::chrono::seconds(120), [&] { return g_.num_final > 0; });
    EXPECT_TRUE(done) << "no final output within 120 s";
    return g_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  Gathered g_;
};

// A model + engine for one test.
struct TestEngine {
  Pretrained pretrained;
  std::unique_ptr<Engine> engine;
};

inline std::unique_ptr<TestEngine> open_engine(const std::string& which, EngineConfig config,
                                               int32_t max_context = 256) {
  auto t = std::make_unique<TestEngine>();
  PretrainedOptions options;
  options.threads = 2;
  options.max_context = max_context;
  if (is_moe_fixture(which)) {
    Result<std::unique_ptr<backend::Backend>> be = open_backend("cpu", options.threads);
    EXPECT_TRUE(be.ok()) << be.status().message();
    if (!be.ok()) return nullptr;
    t->pretrained.backend = std::move(be).value();
    model::LlamaOptions model_options;
    model_options.max_context = max_context;
    Result<model::LoadedModel> m =
        model::load_model(model_path(which), t->pretrained.backend.get(), model_options);
    EXPECT_TRUE(m.ok()) << m.status().message();
    if (!m.ok()) return nullptr;
    t->pretrained.loaded = std::move(m).value();
    Result<text::Tokenizer> tok = text::tokenizer_from_json_file(kTinyDir);
    EXPECT_TRUE(tok.ok()) << tok.status().message();
    if (!tok.ok()) return nullptr;
    t->pretrained.tokenizer.emplace(std::move(tok).value());
  } else {
    Result<Pretrained> p = open_pretrained(model_path(which), options);
    EXPECT_TRUE(p.ok()) << p.status().message();
    if (!p.ok()) return nullptr;
    t->pretrained = std::move(p).value();
  }
  Result<std::unique_ptr<Engine>> e =
      Engine::create(&t->pretrained.model(), &*t->pretrained.tokenizer, config);
  EXPECT_TRUE(e.ok()) << e.status().message();
  if (!e.ok()) return nullptr;
  t->engine = std::move(e).value();
  return t;
}

// Submits and waits for the whole result.
inline Gathered run_one(Engine& engine, GenerateRequest request) {
  Sink sink(request.n);
  Result<RequestId> id = engine.submit(std::move(request), sink.callback());
  EXPECT_TRUE(id.ok()) << id.status().message();
  if (!id.ok()) return {};
  return sink.wait();
}

// Polls `pred` until it holds or 10 s pass.
template <typename Pred>
bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

}  // namespace tessera::engine::testing

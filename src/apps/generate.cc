// `tessera generate`: encode the prompt, prefill it, then sample token by token, streaming text
// through the incremental detokenizer. Invariant: stdout carries only the generated text;
// diagnostics and the speed summary go to stderr.
#include "src/apps/generate.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "tessera/text/detokenizer.h"

namespace tessera::apps {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::set<int32_t> stop_ids(const AppModel& app) {
  std::set<int32_t> ids;
  for (int64_t id : app.loaded.config.eos_token_id) ids.insert(static_cast<int32_t>(id));
  if (auto eos = app.tokenizer->eos_id()) ids.insert(*eos);
  if (auto end = app.tokenizer->token_to_id("<|im_end|>")) ids.insert(*end);
  if (auto eot = app.tokenizer->token_to_id("<|eot_id|>")) ids.insert(*eot);
  return ids;
}

}  // namespace

int run_generate(const GenerateOptions& options) {
  if (options.max_tokens < 0) {
    fmt::print(stderr, "error: --max-tokens must be >= 0\n");
    return 1;
  }
  AppModelOptions model_options = options.model;
  Result<AppModel> app = open_app_model(model_options);
  if (!app.ok()) {
    fmt::print(stderr, "error: {}\n", app.status().message());
    return 1;
  }
  const text::Tokenizer& tok = *app->tokenizer;
  std::string prompt = options.prompt;
  if (options.chat) {
    Result<std::string> wrapped = chat_prompt(*app, prompt);
    if (!wrapped.ok()) {
      fmt::print(stderr, "error: {}\n", wrapped.status().message());
      return 1;
    }
    prompt = *wrapped;
  }
  // A rendered chat prompt already holds the special tokens the template wants (as
  // transformers tokenizes it, with add_special_tokens=False).
  std::vector<int32_t> ids = tok.encode(prompt, /*add_special_tokens=*/!options.chat);
  if (ids.empty()) {
    fmt::print(stderr, "error: the prompt encodes to no tokens\n");
    return 1;
  }
  model::Model& model = app->model();
  const int64_t needed = static_cast<int64_t>(ids.size()) + options.max_tokens;
  if (needed > model.max_context()) {
    fmt::print(stderr, "error: prompt ({} tokens) + --max-tokens {} exceed the context of {}\n",
               ids.size(), options.max_tokens, model.max_context());
    return 1;
  }
  const std::set<int32_t> stops = stop_ids(*app);
  sampling::Sampler sampler(options.sampling);
  text::IncrementalDetokenizer detok(tok);
  OwnedTensor logits(DType::kF32, {1, model.vocab_size()});
  std::span<const float> row(logits.data_as<float>(), model.vocab_size());

  const auto t0 = Clock::now();
  Status s = model.forward(ids, 0, false, logits.view());
  const double prefill_s = seconds_since(t0);
  int32_t generated = 0;
  const auto t1 = Clock::now();
  while (s.ok() && generated < options.max_tokens) {
    const int32_t next = sampler.sample(row);
    ++generated;
    if (stops.count(next)) break;
    std::string piece = detok.push(next);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    if (generated == options.max_tokens) break;
    const int32_t pos = model.num_cached_tokens();
    s = model.forward(std::span<const int32_t>(&next, 1), pos, false, logits.view());
  }
  std::string tail = detok.finish();
  std::fwrite(tail.data(), 1, tail.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!s.ok()) {
    fmt::print(stderr, "error: {}\n", s.message());
    return 1;
  }
  const double decode_s = seconds_since(t1);
  fmt::print(stderr,
             "prompt: {} tokens in {:.3f} s ({:.1f} tok/s); generated: {} tokens in "
             "{:.3f} s ({:.1f} tok/s)\n",
             ids.size(), prefill_s, ids.size() / prefill_s, generated, decode_s,
             generated / std::max(decode_s, 1e-9));
  return 0;
}

}  // namespace tessera::apps

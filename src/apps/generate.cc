// `tessera generate`: one request through tessera::LLM, its deltas streamed to stdout as they
// come. Invariant: stdout carries only the generated text (and a final newline); diagnostics
// and the speed summary go to stderr.
#include "src/apps/generate.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "tessera/engine/llm.h"

namespace tessera::apps {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Turn-end tokens of common chat formats: a chat model ends its answer with one of these even
// when its config names another eos.
std::vector<int32_t> turn_end_ids(const text::Tokenizer& tok) {
  std::vector<int32_t> ids;
  for (const char* name : {"<|im_end|>", "<|eot_id|>"}) {
    if (auto id = tok.token_to_id(name)) ids.push_back(*id);
  }
  return ids;
}

int fail(const Status& s) {
  fmt::print(stderr, "error: {}\n", s.message());
  return 1;
}

}  // namespace

int run_generate(const GenerateOptions& options) {
  if (options.max_tokens < 0) {
    fmt::print(stderr, "error: --max-tokens must be >= 0\n");
    return 1;
  }
  LlmOptions llm_options;
  llm_options.backend = options.model.backend;
  llm_options.threads = options.model.threads;
  llm_options.max_model_len = options.model.max_context;
  llm_options.max_num_seqs = 1;
  llm_options.enforce_eager = options.enforce_eager;
  Result<std::unique_ptr<LLM>> opened = LLM::from_pretrained(options.model.path, llm_options);
  if (!opened.ok()) return fail(opened.status());
  LLM& llm = **opened;

  std::string prompt = options.prompt;
  if (options.chat) {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    messages.push_back({{"role", "user"}, {"content", prompt}});
    Result<std::string> wrapped = llm.apply_chat_template(messages);
    if (!wrapped.ok()) {
      return fail(make_error(wrapped.status().code(), "{}; run without --chat",
                             wrapped.status().message()));
    }
    prompt = *wrapped;
  }
  tessera::GenerateOptions gen;
  gen.sampling = options.sampling;
  if (!gen.sampling.seed) gen.sampling.seed = 0;
  gen.max_tokens = options.max_tokens;
  gen.stop_token_ids = turn_end_ids(llm.tokenizer());
  // A rendered chat prompt already holds the special tokens the template wants (as
  // transformers tokenizes it, with add_special_tokens=False).
  gen.add_special_tokens = !options.chat;
  if (llm.tokenizer().encode(prompt, gen.add_special_tokens).empty()) {
    fmt::print(stderr, "error: the prompt encodes to no tokens\n");
    return 1;
  }
  if (options.max_tokens == 0) {
    std::fputc('\n', stdout);
    return 0;
  }

  const Clock::time_point t0 = Clock::now();
  std::optional<Clock::time_point> first_token;
  Result<GenerateResult> result =
      llm.generate_stream(prompt, gen, [&](const engine::CompletionDelta& delta) {
        if (!first_token && !delta.token_ids.empty()) first_token = Clock::now();
        std::fwrite(delta.text.data(), 1, delta.text.size(), stdout);
        std::fflush(stdout);
      });
  const Clock::time_point t_end = Clock::now();
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!result.ok()) return fail(result.status());
  const size_t num_prompt = result->prompt_token_ids.size();
  const size_t generated = result->completions[0].token_ids.size();
  const double prefill_s = seconds_between(t0, first_token.value_or(t_end));
  const double decode_s = seconds_between(first_token.value_or(t_end), t_end);
  fmt::print(stderr,
             "prompt: {} tokens in {:.3f} s ({:.1f} tok/s); generated: {} tokens in "
             "{:.3f} s ({:.1f} tok/s)\n",
             num_prompt, prefill_s, num_prompt / std::max(prefill_s, 1e-9), generated, decode_s,
             generated / std::max(decode_s, 1e-9));
  return 0;
}

}  // namespace tessera::apps

// LLM: the library API — open a checkpoint, then generate, chat or stream through an Engine
// that batches every call (and every thread's calls) together.
//   auto llm = tessera::LLM::from_pretrained("models/SmolLM2-135M-Instruct.Q4_1.gguf").value();
//   auto out = llm->generate({"The capital of France is"}, {.max_tokens = 16});
// Invariant: an LLM owns backend, model, tokenizer and engine, destroyed engine first (its loop
// thread is joined before the model it runs goes away).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tessera/core/dtype.h"
#include "tessera/core/status.h"
#include "tessera/engine/engine.h"
#include "tessera/engine/pretrained.h"
#include "tessera/sampling/sampling_params.h"

namespace tessera {

struct LlmOptions {
  std::string backend = "cpu";  // cpu | reference | cuda | emulated
  int threads = 0;              // 0: all cores
  int32_t max_model_len = 0;    // 0: min(the model's max positions, 4096)
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;
  int32_t num_kv_blocks = 0;  // 0: the engine's default (see EngineConfig)
  int32_t block_size = 16;
  DType kv_cache_dtype = DType::kF32;  // f32 | f16
  bool enable_prefix_caching = true;
  std::optional<uint64_t> seed;  // the engine's seed for requests without their own
  bool enforce_eager = false;    // no decode-step graphs (EngineConfig::enforce_eager)
};

// Per-call generation settings (the engine::GenerateRequest fields other than the prompt).
struct GenerateOptions {
  sampling::SamplingParams sampling;  // default: temperature 1; set temperature 0 for greedy
  int32_t n = 1;
  std::optional<int32_t> max_tokens = 16;  // nullopt: until the context limit
  int32_t min_tokens = 0;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
  bool add_special_tokens = true;  // text prompts: bos etc. as the tokenizer adds them
  int32_t priority = 0;
};

struct Completion {
  int32_t index = 0;
  std::string text;
  std::vector<int32_t> token_ids;
  engine::FinishReason finish_reason = engine::FinishReason::kLength;
  std::string stop_reason;                        // the matched stop string, if any
  std::vector<engine::SampledLogprobs> logprobs;  // when sampling.logprobs
};

struct GenerateResult {
  std::vector<int32_t> prompt_token_ids;
  std::vector<Completion> completions;  // [n], by index
  int32_t num_cached_prompt_tokens = 0;
};

struct ChatMessage {
  std::string role;  // system | user | assistant | tool
  std::string content;
};
using Conversation = std::vector<ChatMessage>;

struct TokensPrompt {
  std::vector<int32_t> token_ids;  // sent as is (no bos added)
};

// Called on the engine thread with each delta of a streamed request (see OutputCallback rules).
using DeltaCallback = std::function<void(const engine::CompletionDelta& delta)>;

class LLM {
 public:
  // `path`: a .gguf file or an HF directory (config.json + *.safetensors + tokenizer.json).
  static Result<std::unique_ptr<LLM>> from_pretrained(const std::string& path,
                                                      const LlmOptions& options = {});
  ~LLM();

  // One result per prompt, in order; all prompts run concurrently in the engine. Fails as a
  // whole when any prompt is invalid (nothing is run then); a request that fails while running
  // reports kError in its completions' finish_reason and the error in the returned status.
  Result<std::vector<GenerateResult>> generate(const std::vector<std::string>& prompts,
                                               const GenerateOptions& options = {});
  // Prompts given as token ids (a span, so that a braced list of strings picks the overload
  // above unambiguously; a std::vector<TokensPrompt> converts).
  Result<std::vector<GenerateResult>> generate(std::span<const TokensPrompt> prompts,
                                               const GenerateOptions& options = {});
  // Each conversation rendered with the model's chat template (generation prompt added).
  Result<std::vector<GenerateResult>> chat(std::span<const Conversation> conversations,
                                           const GenerateOptions& options = {});
  Result<GenerateResult> chat(const Conversation& conversation,
                              const GenerateOptions& options = {});
  // Streams deltas of one prompt to `on_delta` while it runs; returns the whole result at the
  // end.
  Result<GenerateResult> generate_stream(const std::string& prompt, const GenerateOptions& options,
                                         const DeltaCallback& on_delta);

  // The conversation as text, with the model's chat template. `messages` is an OpenAI-style
  // JSON array; tools / extra_context as text::ChatTemplate::render takes them.
  Result<std::string> apply_chat_template(
      const nlohmann::ordered_json& messages, bool add_generation_prompt = true,
      const nlohmann::ordered_json& tools = nullptr,
      const nlohmann::ordered_json& extra_context = nlohmann::ordered_json::object()) const;
  // Null when the model ships no (parsable) chat template.
  const text::ChatTemplate* chat_template() const;

  engine::Engine& engine() { return *engine_; }
  const text::Tokenizer& tokenizer() const { return *pretrained_.tokenizer; }
  model::Model& model() { return pretrained_.model(); }
  const model::LoadedModel& loaded() const { return pretrained_.loaded; }

 private:
  LLM() = default;
  engine::GenerateRequest make_request(std::vector<int32_t> prompt,
                                       const GenerateOptions& options) const;
  Result<std::vector<GenerateResult>> run(std::vector<std::vector<int32_t>> prompts,
                                          const GenerateOptions& options,
                                          const DeltaCallback* on_delta);

  // NOTE: declaration order is destruction order reversed: engine_ goes first.
  engine::Pretrained pretrained_;
  std::optional<text::ChatTemplate> chat_template_;
  Status chat_template_error_;
  std::unique_ptr<engine::Engine> engine_;
};

}  // namespace tessera

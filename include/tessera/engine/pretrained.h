// Opening a checkpoint for serving: a backend, the model (a .gguf file or an HF directory) and
// its tokenizer, plus the model's own chat template. Shared by the LLM API and the apps.
// Invariant: members are declared so that the model is destroyed before the backend it uses.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tessera/backend/backend.h"
#include "tessera/core/dtype.h"
#include "tessera/core/status.h"
#include "tessera/model/model_loader.h"
#include "tessera/text/chat_template.h"
#include "tessera/text/tokenizer.h"

namespace tessera::engine {

struct PretrainedOptions {
  std::string backend = "cpu";   // cpu | reference
  int threads = 0;               // 0: all cores (configures the process-wide pool)
  int32_t max_context = 0;       // the model's context in tokens (0: min(model max, 4096))
  DType kv_dtype = DType::kF32;  // the single-sequence KV cache's dtype (f32 | f16)
};

struct Pretrained {
  std::unique_ptr<backend::Backend> backend;
  model::LoadedModel loaded;
  std::optional<text::Tokenizer> tokenizer;

  model::Model& model() { return *loaded.model; }
  const model::ModelConfig& config() const { return loaded.config; }
};

// The backend named `name` (threads configure the process-wide pool first).
Result<std::unique_ptr<backend::Backend>> open_backend(const std::string& name, int threads);
Result<Pretrained> open_pretrained(const std::string& path, const PretrainedOptions& options);

// The model's chat template source (GGUF tokenizer.chat_template; HF tokenizer_config.json
// `chat_template` — a string or the "default" of a named list — or chat_template.jinja), or an
// error saying there is none.
Result<std::string> chat_template_source(const model::LoadedModel& loaded);
// The parsed template with the tokenizer's bos/eos as `bos_token` / `eos_token`.
Result<text::ChatTemplate> load_chat_template(const model::LoadedModel& loaded,
                                              const text::Tokenizer& tokenizer);
// `user` as one user turn plus the generation prompt, as transformers'
// apply_chat_template(..., add_generation_prompt=True) renders it; encode the result with
// add_special_tokens = false.
Result<std::string> chat_prompt(const text::ChatTemplate& chat_template, const std::string& user);

}  // namespace tessera::engine

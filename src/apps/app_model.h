// AppModel: what the `tessera` subcommands share — a backend, a loaded model and its
// tokenizer, opened from a .gguf file or an HF directory.
// Invariant: members are declared so that the model is destroyed before the backend it uses.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "tessera/backend/backend.h"
#include "tessera/core/status.h"
#include "tessera/model/model_loader.h"
#include "tessera/text/tokenizer.h"

namespace tessera::apps {

struct AppModelOptions {
  std::string path;
  int threads = 0;              // 0: all cores
  int32_t max_context = 0;      // KV capacity in tokens (0: model default)
  std::string backend = "cpu";  // cpu | reference
};

struct AppModel {
  std::unique_ptr<backend::Backend> backend;
  model::LoadedModel loaded;
  std::optional<text::Tokenizer> tokenizer;

  model::Model& model() { return *loaded.model; }
};

// The backend named in `options` (threads configure the process-wide pool first).
Result<std::unique_ptr<backend::Backend>> open_backend(const std::string& name, int threads);
Result<AppModel> open_app_model(const AppModelOptions& options);

// The model's chat template source (GGUF tokenizer.chat_template; HF tokenizer_config.json
// `chat_template` or chat_template.jinja), or an error saying there is none.
Result<std::string> chat_template_source(const AppModel& app);
// `user` rendered as one user turn plus the generation prompt, exactly as transformers'
// apply_chat_template(..., add_generation_prompt=True) renders it; encode the result with
// add_special_tokens = false.
Result<std::string> chat_prompt(const AppModel& app, const std::string& user);

}  // namespace tessera::apps

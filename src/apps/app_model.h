// AppModel: what the `tessera` subcommands that run a model directly share (perplexity): the
// engine module's Pretrained (backend, model, tokenizer). Thin forwards to tessera::engine; the
// serving-style commands (generate) use tessera::LLM instead.
// Invariant: the model is destroyed before the backend it uses (see engine::Pretrained).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tessera/core/status.h"
#include "tessera/engine/pretrained.h"

namespace tessera::apps {

struct AppModelOptions {
  std::string path;
  int threads = 0;              // 0: all cores
  int32_t max_context = 0;      // KV capacity in tokens (0: model default)
  std::string backend = "cpu";  // cpu | reference
};

using AppModel = engine::Pretrained;

Result<std::unique_ptr<backend::Backend>> open_backend(const std::string& name, int threads);
Result<AppModel> open_app_model(const AppModelOptions& options);

// `user` as one user turn plus the generation prompt with the model's own chat template (see
// engine::chat_prompt); an error when the model has none.
Result<std::string> chat_prompt(const AppModel& app, const std::string& user);

}  // namespace tessera::apps

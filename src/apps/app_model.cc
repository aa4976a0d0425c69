// Forwards from the CLI's model options to the engine module's model opening (see app_model.h).
// Invariant: errors keep the engine module's wording, which names the path.
#include "src/apps/app_model.h"

#include <fmt/format.h>

namespace tessera::apps {

Result<std::unique_ptr<backend::Backend>> open_backend(const std::string& name, int threads) {
  return engine::open_backend(name, threads);
}

Result<AppModel> open_app_model(const AppModelOptions& options) {
  engine::PretrainedOptions p;
  p.backend = options.backend;
  p.threads = options.threads;
  p.max_context = options.max_context;
  return engine::open_pretrained(options.path, p);
}

Result<std::string> chat_prompt(const AppModel& app, const std::string& user) {
  Result<text::ChatTemplate> chat_template = engine::load_chat_template(app.loaded, *app.tokenizer);
  if (!chat_template.ok()) {
    return make_error(chat_template.status().code(), "{}; run without --chat",
                      chat_template.status().message());
  }
  return engine::chat_prompt(*chat_template, user);
}

}  // namespace tessera::apps

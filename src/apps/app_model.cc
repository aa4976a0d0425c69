// Opening a model and its tokenizer for the CLI subcommands (see app_model.h).
// Invariant: any failure is returned as a Status naming the path; nothing is left half-open.
#include "src/apps/app_model.h"

#include <utility>

#include "tessera/core/thread_pool.h"

namespace tessera::apps {

Result<std::unique_ptr<backend::Backend>> open_backend(const std::string& name, int threads) {
  if (threads < 0) return invalid_argument("--threads must be >= 0, got {}", threads);
  configure_default_thread_pool(threads);
  if (name == "cpu") return backend::make_cpu_backend();
  if (name == "reference") return backend::make_reference_backend();
  return invalid_argument("unknown backend '{}' (use cpu or reference)", name);
}

Result<AppModel> open_app_model(const AppModelOptions& options) {
  AppModel app;
  TESSERA_ASSIGN_OR_RETURN(app.backend, open_backend(options.backend, options.threads));
  model::LlamaOptions llama;
  llama.max_context = options.max_context;
  TESSERA_ASSIGN_OR_RETURN(app.loaded, model::load_model(options.path, app.backend.get(), llama));
  if (app.loaded.gguf) {
    TESSERA_ASSIGN_OR_RETURN(text::Tokenizer tok, text::tokenizer_from_gguf(*app.loaded.gguf));
    app.tokenizer.emplace(std::move(tok));
  } else {
    TESSERA_ASSIGN_OR_RETURN(text::Tokenizer tok,
                             text::tokenizer_from_json_file(app.loaded.hf_dir));
    app.tokenizer.emplace(std::move(tok));
  }
  return app;
}

}  // namespace tessera::apps

// Opening a model and its tokenizer for the CLI subcommands (see app_model.h).
// Invariant: any failure is returned as a Status naming the path; nothing is left half-open.
#include "src/apps/app_model.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "tessera/core/thread_pool.h"
#include "tessera/text/chat_template.h"

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

// The model's own chat template: GGUF `tokenizer.chat_template`, or in an HF directory
// tokenizer_config.json's `chat_template` (a string, or a list of named templates of which
// "default" is used), else chat_template.jinja beside it.
Result<std::string> chat_template_source(const AppModel& app) {
  if (app.loaded.gguf) {
    if (auto source = app.loaded.gguf->get_string("tokenizer.chat_template")) return *source;
    return invalid_argument("{} has no tokenizer.chat_template; run without --chat",
                            app.loaded.gguf->path());
  }
  const std::filesystem::path dir(app.loaded.hf_dir);
  std::ifstream config_file(dir / "tokenizer_config.json");
  if (config_file) {
    const nlohmann::json config = nlohmann::json::parse(config_file, nullptr, false);
    if (!config.is_discarded() && config.contains("chat_template")) {
      const nlohmann::json& t = config["chat_template"];
      if (t.is_string()) return t.get<std::string>();
      if (t.is_array()) {
        for (const auto& entry : t) {
          if (entry.is_object() && entry.value("name", "") == "default" &&
              entry.contains("template") && entry["template"].is_string()) {
            return entry["template"].get<std::string>();
          }
        }
      }
    }
  }
  std::ifstream jinja_file(dir / "chat_template.jinja");
  if (jinja_file) return std::string(std::istreambuf_iterator<char>(jinja_file), {});
  return invalid_argument("{} has no chat template; run without --chat", dir.string());
}

// Renders `user` as one user turn with the generation prompt, as transformers'
// apply_chat_template(messages, add_generation_prompt=True) does.
Result<std::string> chat_prompt(const AppModel& app, const std::string& user) {
  TESSERA_ASSIGN_OR_RETURN(std::string source, chat_template_source(app));
  const text::Tokenizer& tok = *app.tokenizer;
  auto token_string = [&](std::optional<int32_t> id) {
    return id ? std::string(tok.token_text(*id)) : std::string();
  };
  TESSERA_ASSIGN_OR_RETURN(
      text::ChatTemplate chat_template,
      text::ChatTemplate::parse(source, token_string(tok.bos_id()), token_string(tok.eos_id())));
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "user"}, {"content", user}});
  return chat_template.render(messages, nullptr, /*add_generation_prompt=*/true,
                              nlohmann::ordered_json::object());
}

}  // namespace tessera::apps

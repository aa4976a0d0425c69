// Opening a model, its tokenizer and chat template (see pretrained.h).
// Invariant: any failure is returned as a Status naming the path; nothing is left half-open.
#include "tessera/engine/pretrained.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "tessera/backend/cuda_backend.h"
#include "tessera/backend/emulated_device.h"
#include "tessera/core/thread_pool.h"

namespace tessera::engine {

Result<std::unique_ptr<backend::Backend>> open_backend(const std::string& name, int threads) {
  if (threads < 0) return invalid_argument("threads must be >= 0, got {}", threads);
  configure_default_thread_pool(threads);
  if (name == "cpu") return backend::make_cpu_backend();
  if (name == "reference") return backend::make_reference_backend();
  if (name == "cuda") {
    TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<backend::CudaBackend> cuda,
                             backend::make_cuda_backend(0));
    return std::unique_ptr<backend::Backend>(std::move(cuda));
  }
  // The CPU backend behind an emulated device (memory the host cannot read outside ops): for
  // checking that a model keeps everything in backend memory, without a GPU.
  if (name == "emulated") return backend::make_emulated_device_backend(backend::make_cpu_backend());
  return invalid_argument("unknown backend '{}' (use cpu, reference, cuda or emulated)", name);
}

Result<Pretrained> open_pretrained(const std::string& path, const PretrainedOptions& options) {
  Pretrained p;
  TESSERA_ASSIGN_OR_RETURN(p.backend, open_backend(options.backend, options.threads));
  model::LlamaOptions llama;
  llama.max_context = options.max_context;
  llama.kv_dtype = options.kv_dtype;
  TESSERA_ASSIGN_OR_RETURN(p.loaded, model::load_model(path, p.backend.get(), llama));
  if (p.loaded.gguf) {
    TESSERA_ASSIGN_OR_RETURN(text::Tokenizer tok, text::tokenizer_from_gguf(*p.loaded.gguf));
    p.tokenizer.emplace(std::move(tok));
  } else {
    TESSERA_ASSIGN_OR_RETURN(text::Tokenizer tok, text::tokenizer_from_json_file(p.loaded.hf_dir));
    p.tokenizer.emplace(std::move(tok));
  }
  return p;
}

Result<std::string> chat_template_source(const model::LoadedModel& loaded) {
  if (loaded.gguf) {
    if (auto source = loaded.gguf->get_string("tokenizer.chat_template")) return *source;
    return invalid_argument("{} has no tokenizer.chat_template", loaded.gguf->path());
  }
  const std::filesystem::path dir(loaded.hf_dir);
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
  return invalid_argument("{} has no chat template", dir.string());
}

Result<text::ChatTemplate> load_chat_template(const model::LoadedModel& loaded,
                                              const text::Tokenizer& tok) {
  TESSERA_ASSIGN_OR_RETURN(std::string source, chat_template_source(loaded));
  auto token_string = [&](std::optional<int32_t> id) {
    return id ? std::string(tok.token_text(*id)) : std::string();
  };
  return text::ChatTemplate::parse(source, token_string(tok.bos_id()), token_string(tok.eos_id()));
}

Result<std::string> chat_prompt(const text::ChatTemplate& chat_template, const std::string& user) {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "user"}, {"content", user}});
  return chat_template.render(messages, nullptr, /*add_generation_prompt=*/true,
                              nlohmann::ordered_json::object());
}

}  // namespace tessera::engine

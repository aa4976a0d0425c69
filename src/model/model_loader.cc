// Checkpoint detection and model construction for the `tessera` apps (see model_loader.h).
// Invariant: format detection looks only at the path (a directory is HF, a file must be GGUF
// or .safetensors beside a config.json); every failure names the path and what was expected.
#include "tessera/model/model_loader.h"

#include <filesystem>
#include <utility>

#include "tessera/model/deepseek.h"

namespace tessera::model {
namespace fs = std::filesystem;

bool is_llama_family(const ModelConfig& config) {
  const std::string& t = config.model_type;
  return t == "llama" || t == "mistral" || t == "qwen2" || t == "smollm";
}

namespace {

Status check_arch(const ModelConfig& config, const std::string& path) {
  if (!is_llama_family(config) && !is_moe_family(config)) {
    return unimplemented(
        "{}: model_type '{}' is not supported yet (supported: llama, mistral, "
        "qwen2, deepseek_v2, deepseek_v3, mixtral)",
        path, config.model_type);
  }
  return {};
}

// The architecture class for config.model_type (check_arch passed).
Result<std::unique_ptr<Model>> create_model(const ModelConfig& config,
                                            std::shared_ptr<const WeightSource> weights,
                                            backend::Backend* backend,
                                            const LlamaOptions& options) {
  if (is_moe_family(config)) {
    DeepseekOptions o;
    o.max_context = options.max_context;
    o.max_chunk = options.max_chunk;
    o.kv_dtype = options.kv_dtype;
    TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<DeepseekModel> m,
                             DeepseekModel::create(config, std::move(weights), backend, o));
    return std::unique_ptr<Model>(std::move(m));
  }
  TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<LlamaModel> m,
                           LlamaModel::create(config, std::move(weights), backend, options));
  return std::unique_ptr<Model>(std::move(m));
}

Result<LoadedModel> load_gguf(const std::string& path, backend::Backend* backend,
                              const LlamaOptions& options) {
  TESSERA_ASSIGN_OR_RETURN(GgufFile file, GgufFile::open(path));
  LoadedModel out;
  out.format = WeightFormat::kGguf;
  out.gguf = std::make_shared<const GgufFile>(std::move(file));
  TESSERA_ASSIGN_OR_RETURN(out.config, ModelConfig::from_gguf(*out.gguf));
  TESSERA_RETURN_IF_ERROR(check_arch(out.config, path));
  out.weights = make_gguf_weight_source(out.gguf);
  TESSERA_ASSIGN_OR_RETURN(out.model, create_model(out.config, out.weights, backend, options));
  return out;
}

Result<LoadedModel> load_hf(const std::string& dir, backend::Backend* backend,
                            const LlamaOptions& options) {
  const fs::path config_path = fs::path(dir) / "config.json";
  if (!fs::exists(config_path)) {
    return make_error(StatusCode::kNotFound,
                      "{}: no config.json (an HF model directory needs "
                      "config.json, *.safetensors and tokenizer.json)",
                      dir);
  }
  LoadedModel out;
  out.format = WeightFormat::kSafetensors;
  out.hf_dir = dir;
  TESSERA_ASSIGN_OR_RETURN(out.config, ModelConfig::from_hf_file(config_path.string()));
  TESSERA_RETURN_IF_ERROR(check_arch(out.config, dir));
  TESSERA_ASSIGN_OR_RETURN(SafetensorsModel st, SafetensorsModel::open(dir));
  out.weights =
      make_safetensors_weight_source(std::make_shared<const SafetensorsModel>(std::move(st)), dir);
  TESSERA_ASSIGN_OR_RETURN(out.model, create_model(out.config, out.weights, backend, options));
  return out;
}

}  // namespace

Result<LoadedModel> load_model(const std::string& path, backend::Backend* backend,
                               const LlamaOptions& options) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return load_hf(path, backend, options);
  if (!fs::exists(path, ec)) {
    return make_error(StatusCode::kNotFound, "model path '{}' does not exist", path);
  }
  if (fs::path(path).extension() == ".safetensors") {
    return load_hf(fs::path(path).parent_path().string(), backend, options);
  }
  return load_gguf(path, backend, options);
}

}  // namespace tessera::model

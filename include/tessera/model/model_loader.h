// load_model: opens a checkpoint — a .gguf file, or an HF directory (config.json +
// *.safetensors) — reads its config and builds the matching architecture.
// Invariant: a LoadedModel owns everything its model points into (mappings, weight source).
#pragma once

#include <memory>
#include <string>

#include "tessera/backend/backend.h"
#include "tessera/core/status.h"
#include "tessera/model/gguf.h"
#include "tessera/model/llama.h"
#include "tessera/model/model.h"
#include "tessera/model/model_config.h"
#include "tessera/model/weights.h"

namespace tessera::model {

struct LoadedModel {
  ModelConfig config;
  WeightFormat format = WeightFormat::kGguf;
  std::shared_ptr<const GgufFile> gguf;  // .gguf only: its tokenizer and chat template live here
  std::string hf_dir;                    // HF directory only: tokenizer.json etc. live here
  std::shared_ptr<const WeightSource> weights;
  std::unique_ptr<Model> model;
};

// Architectures served by LlamaModel (config.model_type); DeepseekModel serves
// deepseek_v2, deepseek_v3 and mixtral (is_moe_family in deepseek.h).
bool is_llama_family(const ModelConfig& config);

// `backend` must outlive the returned model.
Result<LoadedModel> load_model(const std::string& path, backend::Backend* backend,
                               const LlamaOptions& options = {});

}  // namespace tessera::model

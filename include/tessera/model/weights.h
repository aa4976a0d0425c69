// WeightSource: tensors of a checkpoint looked up by role (embedding, layer N's q projection...)
// whatever the file calls them — GGUF names (token_embd, blk.N.attn_q) or HF names
// (model.embed_tokens, model.layers.N.self_attn.q_proj). Invariant: a source keeps its file
// mapped for its lifetime, so every Tensor it returns stays valid while the source lives.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/model/gguf.h"
#include "tessera/model/safetensors.h"

namespace tessera::model {

enum class WeightFormat { kGguf, kSafetensors };

// Roles of the Llama-family weights (Llama, Mistral, Qwen2, SmolLM...).
enum class LlamaWeight {
  kTokenEmbd,    // [vocab, hidden]
  kOutputNorm,   // [hidden]
  kOutput,       // [vocab, hidden] (absent when tied)
  kAttnNorm,     // [hidden]
  kAttnQ,        // [Hq * D, hidden]
  kAttnK,        // [Hkv * D, hidden]
  kAttnV,        // [Hkv * D, hidden]
  kAttnOut,      // [hidden, Hq * D]
  kAttnQBias,    // [Hq * D]
  kAttnKBias,    // [Hkv * D]
  kAttnVBias,    // [Hkv * D]
  kAttnOutBias,  // [hidden]
  kFfnNorm,      // [hidden]
  kFfnGate,      // [ffn, hidden]
  kFfnUp,        // [ffn, hidden]
  kFfnDown,      // [hidden, ffn]
};

// The tensor name of `role` in a checkpoint of `format`; `layer` is ignored for global weights.
std::string llama_weight_name(WeightFormat format, LlamaWeight role, int layer);

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual WeightFormat format() const = 0;
  virtual const std::string& path() const = 0;
  // The tensor named `name` (the file's own name), or nullopt.
  virtual std::optional<Tensor> find(std::string_view name) const = 0;

  std::optional<Tensor> find(LlamaWeight role, int layer = 0) const {
    return find(llama_weight_name(format(), role, layer));
  }
  // As find(), but a missing tensor is a clear error.
  Result<Tensor> require(LlamaWeight role, int layer = 0) const;
};

std::unique_ptr<WeightSource> make_gguf_weight_source(std::shared_ptr<const GgufFile> gguf);
std::unique_ptr<WeightSource> make_safetensors_weight_source(
    std::shared_ptr<const SafetensorsModel> model, std::string path);

}  // namespace tessera::model

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

// Roles of the MoE-family weights beyond the Llama ones (DeepSeek V2/V3 MLA + DeepSeekMoE,
// Mixtral's block_sparse_moe). HF safetensors names only; names follow the hub checkpoints
// (routed experts as separate per-expert tensors).
enum class MoeWeight {
  kQProj,          // [H * qk_head_dim, hidden]          (no q_lora: DeepSeek-V2 / V2-Lite)
  kQAProj,         // [q_lora_rank, hidden]
  kQANorm,         // [q_lora_rank]
  kQBProj,         // [H * qk_head_dim, q_lora_rank]
  kKvAProj,        // [kv_lora_rank + qk_rope_head_dim, hidden]   kv_a_proj_with_mqa
  kKvANorm,        // [kv_lora_rank]
  kKvBProj,        // [H * (qk_nope_head_dim + v_head_dim), kv_lora_rank]
  kOProj,          // [hidden, H * v_head_dim]
  kRouter,         // [E, hidden]                        mlp.gate / block_sparse_moe.gate
  kRouterBias,     // [E]                                e_score_correction_bias (V3)
  kExpertGate,     // [moe_intermediate, hidden] per expert   gate_proj / w1
  kExpertUp,       // [moe_intermediate, hidden] per expert   up_proj / w3
  kExpertDown,     // [hidden, moe_intermediate] per expert   down_proj / w2
  kSharedGate,     // [n_shared * moe_intermediate, hidden]
  kSharedUp,       // [n_shared * moe_intermediate, hidden]
  kSharedDown,     // [hidden, n_shared * moe_intermediate]
};

// HF name of `role` for `model_type` (deepseek_v2, deepseek_v3, mixtral) at `layer` / `expert`.
std::string moe_weight_name(std::string_view model_type, MoeWeight role, int layer,
                            int expert = 0);
// The FP8 block-scale tensor beside a weight: "x.weight" -> "x.weight_scale_inv".
std::string scale_inv_name(std::string_view weight_name);

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

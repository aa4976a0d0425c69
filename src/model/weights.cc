// Weight lookup by role over GGUF and HF safetensors checkpoints (see weights.h).
// Invariant: the name tables below are the only place that knows either naming scheme.
#include "tessera/model/weights.h"

#include <fmt/format.h>

#include <utility>

namespace tessera::model {
namespace {

// Suffix (after "blk.N.") of a per-layer GGUF tensor, or the full global name.
std::string gguf_name(LlamaWeight role, int layer) {
  auto blk = [layer](std::string_view suffix) { return fmt::format("blk.{}.{}", layer, suffix); };
  switch (role) {
    case LlamaWeight::kTokenEmbd:
      return "token_embd.weight";
    case LlamaWeight::kOutputNorm:
      return "output_norm.weight";
    case LlamaWeight::kOutput:
      return "output.weight";
    case LlamaWeight::kAttnNorm:
      return blk("attn_norm.weight");
    case LlamaWeight::kAttnQ:
      return blk("attn_q.weight");
    case LlamaWeight::kAttnK:
      return blk("attn_k.weight");
    case LlamaWeight::kAttnV:
      return blk("attn_v.weight");
    case LlamaWeight::kAttnOut:
      return blk("attn_output.weight");
    case LlamaWeight::kAttnQBias:
      return blk("attn_q.bias");
    case LlamaWeight::kAttnKBias:
      return blk("attn_k.bias");
    case LlamaWeight::kAttnVBias:
      return blk("attn_v.bias");
    case LlamaWeight::kAttnOutBias:
      return blk("attn_output.bias");
    case LlamaWeight::kFfnNorm:
      return blk("ffn_norm.weight");
    case LlamaWeight::kFfnGate:
      return blk("ffn_gate.weight");
    case LlamaWeight::kFfnUp:
      return blk("ffn_up.weight");
    case LlamaWeight::kFfnDown:
      return blk("ffn_down.weight");
  }
  return {};
}

std::string hf_name(LlamaWeight role, int layer) {
  auto lyr = [layer](std::string_view suffix) {
    return fmt::format("model.layers.{}.{}", layer, suffix);
  };
  switch (role) {
    case LlamaWeight::kTokenEmbd:
      return "model.embed_tokens.weight";
    case LlamaWeight::kOutputNorm:
      return "model.norm.weight";
    case LlamaWeight::kOutput:
      return "lm_head.weight";
    case LlamaWeight::kAttnNorm:
      return lyr("input_layernorm.weight");
    case LlamaWeight::kAttnQ:
      return lyr("self_attn.q_proj.weight");
    case LlamaWeight::kAttnK:
      return lyr("self_attn.k_proj.weight");
    case LlamaWeight::kAttnV:
      return lyr("self_attn.v_proj.weight");
    case LlamaWeight::kAttnOut:
      return lyr("self_attn.o_proj.weight");
    case LlamaWeight::kAttnQBias:
      return lyr("self_attn.q_proj.bias");
    case LlamaWeight::kAttnKBias:
      return lyr("self_attn.k_proj.bias");
    case LlamaWeight::kAttnVBias:
      return lyr("self_attn.v_proj.bias");
    case LlamaWeight::kAttnOutBias:
      return lyr("self_attn.o_proj.bias");
    case LlamaWeight::kFfnNorm:
      return lyr("post_attention_layernorm.weight");
    case LlamaWeight::kFfnGate:
      return lyr("mlp.gate_proj.weight");
    case LlamaWeight::kFfnUp:
      return lyr("mlp.up_proj.weight");
    case LlamaWeight::kFfnDown:
      return lyr("mlp.down_proj.weight");
  }
  return {};
}

class GgufWeightSource final : public WeightSource {
 public:
  explicit GgufWeightSource(std::shared_ptr<const GgufFile> gguf) : gguf_(std::move(gguf)) {}
  WeightFormat format() const override { return WeightFormat::kGguf; }
  const std::string& path() const override { return gguf_->path(); }
  std::optional<Tensor> find(std::string_view name) const override {
    const GgufTensorInfo* info = gguf_->find_tensor(name);
    if (info == nullptr) return std::nullopt;
    return gguf_->tensor(*info);
  }

 private:
  std::shared_ptr<const GgufFile> gguf_;
};

class SafetensorsWeightSource final : public WeightSource {
 public:
  SafetensorsWeightSource(std::shared_ptr<const SafetensorsModel> model, std::string path)
      : model_(std::move(model)), path_(std::move(path)) {}
  WeightFormat format() const override { return WeightFormat::kSafetensors; }
  const std::string& path() const override { return path_; }
  std::optional<Tensor> find(std::string_view name) const override {
    const SafetensorsTensor* t = model_->find(name);
    if (t == nullptr || t->shape.size() > kMaxDims) return std::nullopt;
    return model_->tensor(*t);
  }

 private:
  std::shared_ptr<const SafetensorsModel> model_;
  std::string path_;
};

}  // namespace

std::string llama_weight_name(WeightFormat format, LlamaWeight role, int layer) {
  switch (format) {
    case WeightFormat::kGguf:
      return gguf_name(role, layer);
    case WeightFormat::kSafetensors:
      return hf_name(role, layer);
  }
  return {};
}

std::string moe_weight_name(std::string_view model_type, MoeWeight role, int layer, int expert) {
  const bool mixtral = model_type == "mixtral";
  auto lyr = [layer](std::string_view suffix) {
    return fmt::format("model.layers.{}.{}", layer, suffix);
  };
  auto exp = [&](std::string_view deepseek, std::string_view mix) {
    return mixtral ? lyr(fmt::format("block_sparse_moe.experts.{}.{}.weight", expert, mix))
                   : lyr(fmt::format("mlp.experts.{}.{}.weight", expert, deepseek));
  };
  switch (role) {
    case MoeWeight::kQProj:
      return lyr("self_attn.q_proj.weight");
    case MoeWeight::kQAProj:
      return lyr("self_attn.q_a_proj.weight");
    case MoeWeight::kQANorm:
      return lyr("self_attn.q_a_layernorm.weight");
    case MoeWeight::kQBProj:
      return lyr("self_attn.q_b_proj.weight");
    case MoeWeight::kKvAProj:
      return lyr("self_attn.kv_a_proj_with_mqa.weight");
    case MoeWeight::kKvANorm:
      return lyr("self_attn.kv_a_layernorm.weight");
    case MoeWeight::kKvBProj:
      return lyr("self_attn.kv_b_proj.weight");
    case MoeWeight::kOProj:
      return lyr("self_attn.o_proj.weight");
    case MoeWeight::kRouter:
      return lyr(mixtral ? "block_sparse_moe.gate.weight" : "mlp.gate.weight");
    case MoeWeight::kRouterBias:
      return lyr("mlp.gate.e_score_correction_bias");
    case MoeWeight::kExpertGate:
      return exp("gate_proj", "w1");
    case MoeWeight::kExpertUp:
      return exp("up_proj", "w3");
    case MoeWeight::kExpertDown:
      return exp("down_proj", "w2");
    case MoeWeight::kSharedGate:
      return lyr("mlp.shared_experts.gate_proj.weight");
    case MoeWeight::kSharedUp:
      return lyr("mlp.shared_experts.up_proj.weight");
    case MoeWeight::kSharedDown:
      return lyr("mlp.shared_experts.down_proj.weight");
  }
  return {};
}

std::string scale_inv_name(std::string_view weight_name) {
  return fmt::format("{}_scale_inv", weight_name);
}

Result<Tensor> WeightSource::require(LlamaWeight role, int layer) const {
  std::string name = llama_weight_name(format(), role, layer);
  std::optional<Tensor> t = find(name);
  if (!t) {
    return make_error(StatusCode::kNotFound,
                      "{}: missing tensor '{}' (is this a Llama-family "
                      "checkpoint?)",
                      path(), name);
  }
  return *t;
}

std::unique_ptr<WeightSource> make_gguf_weight_source(std::shared_ptr<const GgufFile> gguf) {
  return std::make_unique<GgufWeightSource>(std::move(gguf));
}

std::unique_ptr<WeightSource> make_safetensors_weight_source(
    std::shared_ptr<const SafetensorsModel> model, std::string path) {
  return std::make_unique<SafetensorsWeightSource>(std::move(model), std::move(path));
}

}  // namespace tessera::model

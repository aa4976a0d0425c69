// ModelConfig: the architecture hyper-parameters, with HF config.json field names verbatim, read
// from config.json or from GGUF metadata. Invariant: a config returned by a from_* factory has
// passed validate() (positive sizes, divisible heads, derived head_dim filled in).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/core/status.h"
#include "tessera/model/gguf.h"

namespace tessera::model {

struct RopeScalingConfig {            // HF rope_scaling, names verbatim
  std::string rope_type = "default";  // default | linear | llama3 | yarn | dynamic
  double factor = 1.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32.0, beta_slow = 1.0, mscale = 1.0, mscale_all_dim = 0.0;
  double attention_factor = 0.0;  // yarn cos/sin scale; 0: absent (derived, see below)
};

// YaRN's cos/sin scale as transformers derives it (_compute_yarn_parameters): attention_factor
// when given; else get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim) when both
// are non-zero (DeepSeek); else get_mscale(factor) = 0.1 * ln(factor) + 1 (1 for factor <= 1).
double yarn_attention_factor(const RopeScalingConfig& rope_scaling);

struct ModelConfig {       // HF config.json field names verbatim
  std::string model_type;  // "llama", "mistral", "qwen2", "deepseek_v2", "deepseek_v3", "mixtral"
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0,
          num_attention_heads = 0, num_key_value_heads = 0, head_dim = 0,
          max_position_embeddings = 0;
  double rms_norm_eps = 1e-6, rope_theta = 10000.0;
  RopeScalingConfig rope_scaling;
  bool tie_word_embeddings = false, attention_bias = false, mlp_bias = false;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_id;
  // MoE / MLA (DeepSeek V2/V3, Mixtral).
  int64_t n_routed_experts = 0, n_shared_experts = 0, num_experts_per_tok = 0,
          moe_intermediate_size = 0, first_k_dense_replace = 0, moe_layer_freq = 1,
          kv_lora_rank = 0, q_lora_rank = 0, qk_rope_head_dim = 0, qk_nope_head_dim = 0,
          v_head_dim = 0, n_group = 0, topk_group = 0, num_local_experts = 0;
  double routed_scaling_factor = 1.0;
  bool norm_topk_prob = false;
  std::string scoring_func = "softmax", topk_method = "greedy", hidden_act = "silu";

  bool is_deepseek() const { return model_type == "deepseek_v2" || model_type == "deepseek_v3"; }

  // Parses config.json text; `name` (a path or label) appears in error messages.
  static Result<ModelConfig> from_hf_json_text(std::string_view json_text, std::string_view name);
  static Result<ModelConfig> from_hf_file(const std::string& config_json_path);
  // From GGUF metadata: llama (incl. Mistral/Mixtral GGUFs), qwen2, deepseek2.
  static Result<ModelConfig> from_gguf(const GgufFile& gguf);
  Status validate() const;  // positive sizes, heads divisible, known rope / routing kinds
};

}  // namespace tessera::model

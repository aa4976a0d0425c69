// ModelConfig readers: HF config.json (nlohmann, exception-free) and GGUF metadata
// (<arch>.* keys), plus validate(). Invariant: a field absent from the source keeps its HF
// default; a field present with the wrong JSON type is an error, never silently ignored.
#include "tessera/model/model_config.h"

#include <cmath>
#include <exception>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "tessera/model/mapped_file.h"

namespace tessera::model {
namespace {

using nlohmann::json;

// Reads typed fields from one JSON object, remembering the first type error.
class FieldReader {
 public:
  FieldReader(const json& obj, std::string_view name, std::string_view where)
      : obj_(obj), name_(name), where_(where) {}

  const Status& status() const { return status_; }
  bool has(const char* key) const { return lookup(key) != nullptr; }

  void get(const char* key, int64_t* out) {
    const json* v = lookup(key);
    if (v == nullptr) return;
    if (v->is_number_integer()) {
      if (v->is_number_unsigned() &&
          v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return error(key, "an integer that fits in int64");
      }
      *out = v->get<int64_t>();
    } else if (v->is_number_float() && std::isfinite(v->get<double>()) &&
               std::trunc(v->get<double>()) == v->get<double>() &&
               std::fabs(v->get<double>()) < 9.0e18) {
      *out = static_cast<int64_t>(v->get<double>());
    } else {
      error(key, "an integer");
    }
  }
  void get(const char* key, double* out) {
    const json* v = lookup(key);
    if (v == nullptr) return;
    if (!v->is_number()) return error(key, "a number");
    *out = v->get<double>();
  }
  void get(const char* key, bool* out) {
    const json* v = lookup(key);
    if (v == nullptr) return;
    if (!v->is_boolean()) return error(key, "true or false");
    *out = v->get<bool>();
  }
  void get(const char* key, std::string* out) {
    const json* v = lookup(key);
    if (v == nullptr) return;
    if (!v->is_string()) return error(key, "a string");
    *out = v->get<std::string>();
  }
  // An int, a list of ints, or null.
  void get_int_list(const char* key, std::vector<int64_t>* out) {
    const json* v = lookup(key);
    if (v == nullptr) return;
    std::vector<int64_t> ids;
    const auto push = [&](const json& x) {
      if (!x.is_number_integer()) return false;
      ids.push_back(x.get<int64_t>());
      return true;
    };
    if (v->is_array()) {
      for (const auto& x : *v) {
        if (!push(x)) return error(key, "an integer or a list of integers");
      }
    } else if (!push(*v)) {
      return error(key, "an integer or a list of integers");
    }
    *out = std::move(ids);
  }

 private:
  // nullptr when absent or null (null means "use the default", as in HF).
  const json* lookup(const char* key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  void error(const char* key, std::string_view expected) {
    if (status_.ok()) {
      status_ = invalid_argument("{}: {}\"{}\" must be {} (got {})", name_, where_, key, expected,
                                 obj_.at(key).dump(-1, ' ', false, json::error_handler_t::replace));
    }
  }

  const json& obj_;
  std::string_view name_;
  std::string_view where_;
  Status status_;
};

Status read_rope_scaling(const json& obj, std::string_view name, RopeScalingConfig* rs) {
  FieldReader r(obj, name, "rope_scaling.");
  r.get("type", &rs->rope_type);  // older configs
  r.get("rope_type", &rs->rope_type);
  r.get("factor", &rs->factor);
  r.get("low_freq_factor", &rs->low_freq_factor);
  r.get("high_freq_factor", &rs->high_freq_factor);
  r.get("original_max_position_embeddings", &rs->original_max_position_embeddings);
  r.get("beta_fast", &rs->beta_fast);
  r.get("beta_slow", &rs->beta_slow);
  r.get("mscale", &rs->mscale);
  r.get("mscale_all_dim", &rs->mscale_all_dim);
  r.get("attention_factor", &rs->attention_factor);
  return r.status();
}

Status read_fields(const json& j, std::string_view name, ModelConfig* c) {
  FieldReader r(j, name, "");
  if (!r.has("model_type")) {
    return invalid_argument("{}: config.json has no \"model_type\"", name);
  }
  r.get("model_type", &c->model_type);
  const std::pair<const char*, int64_t*> int_fields[] = {
      {"vocab_size", &c->vocab_size},
      {"hidden_size", &c->hidden_size},
      {"intermediate_size", &c->intermediate_size},
      {"num_hidden_layers", &c->num_hidden_layers},
      {"num_attention_heads", &c->num_attention_heads},
      {"num_key_value_heads", &c->num_key_value_heads},
      {"head_dim", &c->head_dim},
      {"max_position_embeddings", &c->max_position_embeddings},
      {"bos_token_id", &c->bos_token_id},
      {"n_routed_experts", &c->n_routed_experts},
      {"n_shared_experts", &c->n_shared_experts},
      {"num_experts_per_tok", &c->num_experts_per_tok},
      {"moe_intermediate_size", &c->moe_intermediate_size},
      {"first_k_dense_replace", &c->first_k_dense_replace},
      {"moe_layer_freq", &c->moe_layer_freq},
      {"kv_lora_rank", &c->kv_lora_rank},
      {"q_lora_rank", &c->q_lora_rank},
      {"qk_rope_head_dim", &c->qk_rope_head_dim},
      {"qk_nope_head_dim", &c->qk_nope_head_dim},
      {"v_head_dim", &c->v_head_dim},
      {"n_group", &c->n_group},
      {"topk_group", &c->topk_group},
      {"num_local_experts", &c->num_local_experts}};
  for (const auto& [key, field] : int_fields) r.get(key, field);
  r.get("rms_norm_eps", &c->rms_norm_eps);
  r.get("rope_theta", &c->rope_theta);
  r.get("routed_scaling_factor", &c->routed_scaling_factor);
  r.get("tie_word_embeddings", &c->tie_word_embeddings);
  r.get("attention_bias", &c->attention_bias);
  r.get("mlp_bias", &c->mlp_bias);
  r.get("norm_topk_prob", &c->norm_topk_prob);
  r.get("scoring_func", &c->scoring_func);
  r.get("topk_method", &c->topk_method);
  r.get("hidden_act", &c->hidden_act);
  r.get_int_list("eos_token_id", &c->eos_token_id);
  TESSERA_RETURN_IF_ERROR(r.status());

  // rope_scaling (HF) or rope_parameters (newer transformers, same names plus rope_theta).
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_object())
      return invalid_argument("{}: \"{}\" must be an object or null", name, key);
    TESSERA_RETURN_IF_ERROR(read_rope_scaling(*it, name, &c->rope_scaling));
    if (std::string_view(key) == "rope_parameters" && !r.has("rope_theta")) {
      FieldReader pr(*it, name, "rope_parameters.");
      pr.get("rope_theta", &c->rope_theta);
      TESSERA_RETURN_IF_ERROR(pr.status());
    }
  }
  return {};
}

// HF derivations for fields a config may leave out.
void fill_derived(ModelConfig* c) {
  if (c->num_key_value_heads == 0) c->num_key_value_heads = c->num_attention_heads;
  if (c->head_dim == 0) {
    if (c->is_deepseek()) {
      c->head_dim = c->qk_rope_head_dim;  // as transformers' DeepseekV2/V3 configs do
    } else if (c->num_attention_heads > 0) {
      c->head_dim = c->hidden_size / c->num_attention_heads;
    }
  }
  if (c->rope_scaling.rope_type == "yarn" &&
      c->rope_scaling.original_max_position_embeddings == 0) {
    c->rope_scaling.original_max_position_embeddings = c->max_position_embeddings;
  }
}

Status check(bool ok, std::string_view what) {
  if (ok) return {};
  return invalid_argument("invalid model config: {}", what);
}

}  // namespace

Result<ModelConfig> ModelConfig::from_hf_json_text(std::string_view json_text,
                                                   std::string_view name) {
  ModelConfig c;
  try {
    const json j = json::parse(json_text.begin(), json_text.end(), nullptr, false);
    if (j.is_discarded()) return invalid_argument("{}: config.json is not valid JSON", name);
    if (!j.is_object()) return invalid_argument("{}: config.json is not a JSON object", name);
    TESSERA_RETURN_IF_ERROR(read_fields(j, name, &c));
  } catch (const std::exception& e) {  // NOTE: defensive; the reads above check types first
    return invalid_argument("{}: cannot read config.json: {}", name, e.what());
  }
  fill_derived(&c);
  if (Status s = c.validate(); !s.ok()) return invalid_argument("{}: {}", name, s.message());
  return c;
}

Result<ModelConfig> ModelConfig::from_hf_file(const std::string& config_json_path) {
  TESSERA_ASSIGN_OR_RETURN(auto file, MappedFile::open(config_json_path));
  const std::string_view text(reinterpret_cast<const char*>(file->data()), file->size());
  return from_hf_json_text(text, config_json_path);
}

namespace {

// Reads "<arch>.<key>" metadata for one GGUF file.
class GgufKeys {
 public:
  GgufKeys(const GgufFile& f, std::string arch) : f_(f), prefix_(std::move(arch) + ".") {}
  std::string key(std::string_view k) const { return prefix_ + std::string(k); }
  // An integer, or the first element of a per-layer integer array (some converters write those).
  std::optional<int64_t> get_int(std::string_view k) const {
    if (auto v = f_.get_int(key(k))) return v;
    if (auto a = f_.get_int_array(key(k)); a && !a->empty()) return a->front();
    return std::nullopt;
  }
  void get(std::string_view k, int64_t* out) const {
    if (auto v = get_int(k)) *out = *v;
  }
  void get(std::string_view k, double* out) const {
    if (auto v = f_.get_float(key(k))) *out = *v;
  }
  void get(std::string_view k, bool* out) const {
    if (auto v = f_.get_bool(key(k))) *out = *v;
  }

 private:
  const GgufFile& f_;
  std::string prefix_;
};

void read_gguf_rope(const GgufFile& f, const GgufKeys& k, ModelConfig* c) {
  auto& rs = c->rope_scaling;
  const auto type = f.get_string(k.key("rope.scaling.type"));
  if (type && *type != "none") rs.rope_type = *type;
  k.get("rope.scaling.factor", &rs.factor);
  if (!type) {
    double linear = 0;  // older files: rope.scale_linear
    k.get("rope.scale_linear", &linear);
    if (linear > 0 && linear != 1.0) {
      rs.rope_type = "linear";
      rs.factor = linear;
    }
  }
  k.get("rope.scaling.original_context_length", &rs.original_max_position_embeddings);
  k.get("rope.scaling.yarn_beta_fast", &rs.beta_fast);
  k.get("rope.scaling.yarn_beta_slow", &rs.beta_slow);
  double log_mul = 0;  // converters store 0.1 * mscale_all_dim
  k.get("rope.scaling.yarn_log_multiplier", &log_mul);
  if (log_mul != 0) rs.mscale_all_dim = log_mul / 0.1;
}

void read_gguf_moe(const GgufFile& f, const GgufKeys& k, ModelConfig* c) {
  int64_t experts = 0;
  k.get("expert_count", &experts);
  k.get("expert_used_count", &c->num_experts_per_tok);
  if (!c->is_deepseek()) {
    c->num_local_experts = experts;
    return;
  }
  c->n_routed_experts = experts;
  k.get("expert_shared_count", &c->n_shared_experts);
  k.get("expert_feed_forward_length", &c->moe_intermediate_size);
  k.get("leading_dense_block_count", &c->first_k_dense_replace);
  k.get("expert_weights_scale", &c->routed_scaling_factor);
  k.get("expert_weights_norm", &c->norm_topk_prob);
  k.get("expert_group_count", &c->n_group);
  k.get("expert_group_used_count", &c->topk_group);
  int64_t gating = 1;  // 1 = softmax, 2 = sigmoid
  k.get("expert_gating_func", &gating);
  c->scoring_func = gating == 2 ? "sigmoid" : "softmax";
  if (gating == 2) {
    c->model_type = "deepseek_v3";
    c->topk_method = "noaux_tc";
  } else {
    c->topk_method = c->n_group > 1 ? "group_limited_greedy" : "greedy";
  }
  k.get("attention.q_lora_rank", &c->q_lora_rank);
  k.get("attention.kv_lora_rank", &c->kv_lora_rank);
  k.get("rope.dimension_count", &c->qk_rope_head_dim);
  // Newer converters write the MLA sizes under *_mla and reuse key/value_length for the
  // absorbed (latent) layout; older ones have only key/value_length = the MLA sizes.
  int64_t key_len = 0, value_len = 0;
  k.get("attention.key_length", &key_len);
  k.get("attention.value_length", &value_len);
  k.get("attention.key_length_mla", &key_len);
  k.get("attention.value_length_mla", &value_len);
  c->qk_nope_head_dim = key_len - c->qk_rope_head_dim;
  c->v_head_dim = value_len;
}

}  // namespace

Result<ModelConfig> ModelConfig::from_gguf(const GgufFile& f) {
  const auto arch = f.get_string("general.architecture");
  if (!arch) return invalid_argument("{}: GGUF has no general.architecture", f.path());
  ModelConfig c;
  if (*arch == "llama") {
    c.model_type = "llama";
  } else if (*arch == "qwen2") {
    c.model_type = "qwen2";
  } else if (*arch == "deepseek2") {
    c.model_type = "deepseek_v2";  // read_gguf_moe upgrades sigmoid-gated files to v3
  } else {
    return unimplemented("{}: GGUF architecture '{}' is not supported (llama, qwen2, deepseek2)",
                         f.path(), *arch);
  }
  const GgufKeys k(f, *arch);
  for (const char* required : {"embedding_length", "block_count", "attention.head_count"}) {
    if (!k.get_int(required)) {
      return invalid_argument("{}: GGUF is missing integer key '{}'", f.path(), k.key(required));
    }
  }
  k.get("embedding_length", &c.hidden_size);
  k.get("block_count", &c.num_hidden_layers);
  k.get("feed_forward_length", &c.intermediate_size);
  k.get("attention.head_count", &c.num_attention_heads);
  k.get("attention.head_count_kv", &c.num_key_value_heads);
  k.get("context_length", &c.max_position_embeddings);
  k.get("attention.layer_norm_rms_epsilon", &c.rms_norm_eps);
  k.get("rope.freq_base", &c.rope_theta);
  if (!c.is_deepseek()) k.get("attention.key_length", &c.head_dim);
  read_gguf_rope(f, k, &c);
  read_gguf_moe(f, k, &c);
  if (c.model_type == "llama" && c.num_local_experts > 0) c.model_type = "mixtral";

  k.get("vocab_size", &c.vocab_size);
  if (c.vocab_size == 0) {
    if (auto n = f.get_array_size("tokenizer.ggml.tokens")) c.vocab_size = static_cast<int64_t>(*n);
  }
  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  if (c.model_type == "llama" || c.model_type == "mixtral") {
    c.attention_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
    c.mlp_bias = f.find_tensor("blk.0.ffn_up.bias") != nullptr;
  }
  if (auto bos = f.get_int("tokenizer.ggml.bos_token_id")) c.bos_token_id = *bos;
  if (auto eos = f.get_int("tokenizer.ggml.eos_token_id")) c.eos_token_id = {*eos};
  fill_derived(&c);
  if (Status s = c.validate(); !s.ok()) return invalid_argument("{}: {}", f.path(), s.message());
  return c;
}

namespace {

Status validate_sizes(const ModelConfig& c) {
  TESSERA_RETURN_IF_ERROR(check(!c.model_type.empty(), "model_type is empty"));
  TESSERA_RETURN_IF_ERROR(check(c.vocab_size > 0, "vocab_size must be positive"));
  TESSERA_RETURN_IF_ERROR(check(c.hidden_size > 0, "hidden_size must be positive"));
  TESSERA_RETURN_IF_ERROR(check(c.intermediate_size > 0, "intermediate_size must be positive"));
  TESSERA_RETURN_IF_ERROR(check(c.num_hidden_layers > 0, "num_hidden_layers must be positive"));
  TESSERA_RETURN_IF_ERROR(check(c.num_attention_heads > 0, "num_attention_heads must be positive"));
  TESSERA_RETURN_IF_ERROR(check(c.num_key_value_heads > 0, "num_key_value_heads must be positive"));
  TESSERA_RETURN_IF_ERROR(check(c.num_attention_heads % c.num_key_value_heads == 0,
                                "num_attention_heads must be a multiple of num_key_value_heads"));
  if (c.is_deepseek()) {  // MLA
    TESSERA_RETURN_IF_ERROR(check(c.kv_lora_rank > 0, "kv_lora_rank must be positive"));
    TESSERA_RETURN_IF_ERROR(check(c.q_lora_rank >= 0, "q_lora_rank < 0"));
    TESSERA_RETURN_IF_ERROR(check(c.qk_rope_head_dim > 0 && c.qk_rope_head_dim % 2 == 0,
                                  "qk_rope_head_dim must be positive and even"));
    TESSERA_RETURN_IF_ERROR(check(c.qk_nope_head_dim > 0, "qk_nope_head_dim must be positive"));
    TESSERA_RETURN_IF_ERROR(check(c.v_head_dim > 0, "v_head_dim must be positive"));
  }
  TESSERA_RETURN_IF_ERROR(check(c.head_dim > 0, "head_dim must be positive"));
  if (!c.is_deepseek()) {
    TESSERA_RETURN_IF_ERROR(check(c.head_dim % 2 == 0, "head_dim must be even (rotary pairs)"));
  }
  TESSERA_RETURN_IF_ERROR(check(c.max_position_embeddings >= 0, "max_position_embeddings < 0"));
  TESSERA_RETURN_IF_ERROR(check(c.rms_norm_eps > 0, "rms_norm_eps must be positive"));
  TESSERA_RETURN_IF_ERROR(check(c.bos_token_id >= -1 && c.bos_token_id < c.vocab_size,
                                "bos_token_id is outside the vocabulary"));
  for (int64_t id : c.eos_token_id) {
    TESSERA_RETURN_IF_ERROR(
        check(id >= 0 && id < c.vocab_size, "eos_token_id is outside the vocabulary"));
  }
  return check(!c.hidden_act.empty(), "hidden_act is empty");
}

Status validate_rope(const ModelConfig& c) {
  TESSERA_RETURN_IF_ERROR(check(c.rope_theta > 0, "rope_theta must be positive"));
  const RopeScalingConfig& rs = c.rope_scaling;
  const std::string& rt = rs.rope_type;
  TESSERA_RETURN_IF_ERROR(
      check(rt == "default" || rt == "linear" || rt == "llama3" || rt == "yarn" || rt == "dynamic",
            "rope_scaling type must be default, linear, llama3, yarn or dynamic"));
  TESSERA_RETURN_IF_ERROR(check(rs.factor > 0, "rope_scaling.factor must be positive"));
  if (rt == "llama3") {
    TESSERA_RETURN_IF_ERROR(check(rs.original_max_position_embeddings > 0,
                                  "llama3 rope_scaling needs original_max_position_embeddings"));
    TESSERA_RETURN_IF_ERROR(check(rs.high_freq_factor > rs.low_freq_factor,
                                  "llama3 rope_scaling needs high_freq_factor > low_freq_factor"));
  }
  if (rt == "yarn") {
    TESSERA_RETURN_IF_ERROR(check(rs.original_max_position_embeddings > 0,
                                  "yarn rope_scaling needs original_max_position_embeddings"));
  }
  return {};
}

Status validate_moe(const ModelConfig& c) {
  TESSERA_RETURN_IF_ERROR(check(c.scoring_func == "softmax" || c.scoring_func == "sigmoid",
                                "scoring_func must be softmax or sigmoid"));
  TESSERA_RETURN_IF_ERROR(check(c.topk_method == "greedy" ||
                                    c.topk_method == "group_limited_greedy" ||
                                    c.topk_method == "noaux_tc",
                                "topk_method must be greedy, group_limited_greedy or noaux_tc"));
  if (c.num_local_experts > 0) {  // Mixtral
    TESSERA_RETURN_IF_ERROR(
        check(c.num_experts_per_tok > 0 && c.num_experts_per_tok <= c.num_local_experts,
              "num_experts_per_tok must be in [1, num_local_experts]"));
  }
  if (c.n_routed_experts <= 0) return {};
  // DeepSeek routed experts.
  TESSERA_RETURN_IF_ERROR(
      check(c.num_experts_per_tok > 0 && c.num_experts_per_tok <= c.n_routed_experts,
            "num_experts_per_tok must be in [1, n_routed_experts]"));
  TESSERA_RETURN_IF_ERROR(
      check(c.moe_intermediate_size > 0, "moe_intermediate_size must be positive"));
  TESSERA_RETURN_IF_ERROR(check(c.moe_layer_freq > 0, "moe_layer_freq must be positive"));
  TESSERA_RETURN_IF_ERROR(
      check(c.first_k_dense_replace >= 0 && c.first_k_dense_replace <= c.num_hidden_layers,
            "first_k_dense_replace must be in [0, num_hidden_layers]"));
  TESSERA_RETURN_IF_ERROR(check(c.n_shared_experts >= 0, "n_shared_experts < 0"));
  if (c.n_group > 1) {
    TESSERA_RETURN_IF_ERROR(check(c.n_routed_experts % c.n_group == 0,
                                  "n_routed_experts must be a multiple of n_group"));
    TESSERA_RETURN_IF_ERROR(
        check(c.topk_group > 0 && c.topk_group <= c.n_group, "topk_group must be in [1, n_group]"));
  }
  return {};
}

}  // namespace

Status ModelConfig::validate() const {
  TESSERA_RETURN_IF_ERROR(validate_sizes(*this));
  TESSERA_RETURN_IF_ERROR(validate_rope(*this));
  return validate_moe(*this);
}

double yarn_attention_factor(const RopeScalingConfig& rs) {
  if (rs.attention_factor > 0) return rs.attention_factor;
  auto get_mscale = [](double scale, double mscale) {
    return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
  };
  if (rs.mscale != 0 && rs.mscale_all_dim != 0) {
    return get_mscale(rs.factor, rs.mscale) / get_mscale(rs.factor, rs.mscale_all_dim);
  }
  return get_mscale(rs.factor, 1.0);
}

}  // namespace tessera::model

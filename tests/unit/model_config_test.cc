// ModelConfig: config.json samples for llama (llama3 rope), qwen2, mixtral and deepseek_v3 (MLA,
// MoE, yarn); GGUF-derived configs (synthetic llama/deepseek2 fixtures and the real SmolLM2 file);
// and the errors a malformed or inconsistent config must produce.
#include "tessera/model/model_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tessera/model/gguf.h"

namespace tessera::model {
namespace {

const std::string kFixtures = std::string(TESSERA_FIXTURES_DIR) + "/loaders/";

// A Llama-3-style 8B config (hand-written sample).
constexpr const char* kLlamaJson = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
  "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
  "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "tie_word_embeddings": false, "attention_bias": false, "mlp_bias": false,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
  "hidden_act": "silu", "torch_dtype": "bfloat16", "pretraining_tp": 1
})";

// A DeepSeek-V3-style config, shrunk (hand-written sample).
constexpr const char* kDeepseekJson = R"({
  "model_type": "deepseek_v3", "vocab_size": 129280, "hidden_size": 7168,
  "intermediate_size": 18432, "moe_intermediate_size": 2048, "num_hidden_layers": 61,
  "num_attention_heads": 128, "num_key_value_heads": 128, "n_shared_experts": 1,
  "n_routed_experts": 256, "routed_scaling_factor": 2.5, "kv_lora_rank": 512,
  "q_lora_rank": 1536, "qk_rope_head_dim": 64, "v_head_dim": 128, "qk_nope_head_dim": 128,
  "topk_method": "noaux_tc", "n_group": 8, "topk_group": 4, "num_experts_per_tok": 8,
  "moe_layer_freq": 1, "first_k_dense_replace": 3, "norm_topk_prob": true,
  "scoring_func": "sigmoid", "hidden_act": "silu", "max_position_embeddings": 163840,
  "rms_norm_eps": 1e-06, "rope_theta": 10000, "bos_token_id": 0, "eos_token_id": 1,
  "tie_word_embeddings": false, "attention_bias": false,
  "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                   "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                   "type": "yarn"}
})";

// A Mixtral-8x7B-style config (hand-written sample).
constexpr const char* kMixtralJson = R"({
  "model_type": "mixtral", "vocab_size": 32000, "hidden_size": 4096,
  "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
  "num_key_value_heads": 8, "num_local_experts": 8, "num_experts_per_tok": 2,
  "max_position_embeddings": 32768, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
  "rope_scaling": null, "sliding_window": null, "tie_word_embeddings": false,
  "bos_token_id": 1, "eos_token_id": 2, "router_aux_loss_coef": 0.02
})";

TEST(ModelConfig, LlamaFromHfJson) {
  auto c = ModelConfig::from_hf_json_text(kLlamaJson, "llama.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->model_type, "llama");
  EXPECT_EQ(c->vocab_size, 128256);
  EXPECT_EQ(c->hidden_size, 4096);
  EXPECT_EQ(c->intermediate_size, 14336);
  EXPECT_EQ(c->num_hidden_layers, 32);
  EXPECT_EQ(c->num_attention_heads, 32);
  EXPECT_EQ(c->num_key_value_heads, 8);
  EXPECT_EQ(c->head_dim, 128);  // derived: hidden / heads
  EXPECT_EQ(c->max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  EXPECT_EQ(c->rope_scaling.rope_type, "llama3");
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->bos_token_id, 128000);
  EXPECT_EQ(c->eos_token_id, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c->num_local_experts, 0);
  EXPECT_EQ(c->hidden_act, "silu");
}

TEST(ModelConfig, DeepseekV3FromHfJson) {
  auto c = ModelConfig::from_hf_json_text(kDeepseekJson, "dsv3.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->model_type, "deepseek_v3");
  EXPECT_TRUE(c->is_deepseek());
  EXPECT_EQ(c->head_dim, 64);  // transformers sets head_dim = qk_rope_head_dim
  EXPECT_EQ(c->kv_lora_rank, 512);
  EXPECT_EQ(c->q_lora_rank, 1536);
  EXPECT_EQ(c->qk_rope_head_dim, 64);
  EXPECT_EQ(c->qk_nope_head_dim, 128);
  EXPECT_EQ(c->v_head_dim, 128);
  EXPECT_EQ(c->n_routed_experts, 256);
  EXPECT_EQ(c->n_shared_experts, 1);
  EXPECT_EQ(c->num_experts_per_tok, 8);
  EXPECT_EQ(c->moe_intermediate_size, 2048);
  EXPECT_EQ(c->first_k_dense_replace, 3);
  EXPECT_EQ(c->moe_layer_freq, 1);
  EXPECT_EQ(c->n_group, 8);
  EXPECT_EQ(c->topk_group, 4);
  EXPECT_DOUBLE_EQ(c->routed_scaling_factor, 2.5);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_EQ(c->scoring_func, "sigmoid");
  EXPECT_EQ(c->topk_method, "noaux_tc");
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);      // an integer in the JSON
  EXPECT_EQ(c->rope_scaling.rope_type, "yarn");  // from the legacy "type" key
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 40.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.beta_slow, 1.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.mscale, 1.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.mscale_all_dim, 1.0);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_EQ(c->eos_token_id, (std::vector<int64_t>{1}));
}

TEST(ModelConfig, DeepseekV2LiteNullQLoraRank) {
  std::string text = kDeepseekJson;
  text.replace(text.find("\"q_lora_rank\": 1536"), 19, "\"q_lora_rank\": null");
  text.replace(text.find("\"deepseek_v3\""), 13, "\"deepseek_v2\"");
  auto c = ModelConfig::from_hf_json_text(text, "dsv2.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->model_type, "deepseek_v2");
  EXPECT_EQ(c->q_lora_rank, 0);
}

TEST(ModelConfig, MixtralFromHfJson) {
  auto c = ModelConfig::from_hf_json_text(kMixtralJson, "mixtral.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->model_type, "mixtral");
  EXPECT_EQ(c->num_local_experts, 8);
  EXPECT_EQ(c->num_experts_per_tok, 2);
  EXPECT_EQ(c->n_routed_experts, 0);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_EQ(c->rope_scaling.rope_type, "default");
  EXPECT_EQ(c->eos_token_id, (std::vector<int64_t>{2}));
}

TEST(ModelConfig, DefaultsForAbsentFields) {
  auto c = ModelConfig::from_hf_json_text(
      R"({"model_type": "qwen2", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
          "num_hidden_layers": 2, "num_attention_heads": 4, "head_dim": null,
          "tie_word_embeddings": true, "eos_token_id": null})",
      "qwen2.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->num_key_value_heads, 4);  // = num_attention_heads
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_TRUE(c->eos_token_id.empty());
  EXPECT_EQ(c->bos_token_id, -1);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  // An explicit head_dim wins over the derivation.
  auto d = ModelConfig::from_hf_json_text(
      R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "head_dim": 32})",
      "hd.json");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->head_dim, 32);
}

TEST(ModelConfig, BadConfigsAreCleanErrors) {
  const std::string base =
      R"("vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
         "num_hidden_layers": 2, "num_attention_heads": 4)";
  struct Case {
    const char* name;
    std::string json;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"not json", "{\"model_type\": ", "not valid JSON"},
      {"array", "[1, 2]", "not a JSON object"},
      {"no model_type", "{" + base + "}", "model_type"},
      {"string size", R"({"model_type": "llama", "vocab_size": 100, "hidden_size": "big"})",
       "\"hidden_size\" must be an integer"},
      {"fractional size", R"({"model_type": "llama", "hidden_size": 64.5})", "hidden_size"},
      {"bool as string",
       "{\"model_type\": \"llama\", " + base + R"(, "tie_word_embeddings": "yes"})",
       "tie_word_embeddings"},
      {"eos list of strings", "{\"model_type\": \"llama\", " + base + R"(, "eos_token_id": ["x"]})",
       "eos_token_id"},
      {"rope_scaling string",
       "{\"model_type\": \"llama\", " + base + R"(, "rope_scaling": "yarn"})", "rope_scaling"},
      {"rope factor string",
       "{\"model_type\": \"llama\", " + base +
           R"(, "rope_scaling": {"type": "linear", "factor": "2"}})",
       "rope_scaling.\"factor\""},
      {"heads not divisible",
       "{\"model_type\": \"llama\", " + base + R"(, "num_key_value_heads": 3})",
       "multiple of num_key_value_heads"},
      {"zero layers",
       R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
           "num_hidden_layers": 0, "num_attention_heads": 4})",
       "num_hidden_layers"},
      {"unknown rope",
       "{\"model_type\": \"llama\", " + base + R"(, "rope_scaling": {"rope_type": "longrope"}})",
       "rope_scaling type"},
      {"llama3 without original",
       "{\"model_type\": \"llama\", " + base +
           R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8}})",
       "original_max_position_embeddings"},
      {"eos outside vocab", "{\"model_type\": \"llama\", " + base + R"(, "eos_token_id": 100})",
       "eos_token_id"},
      {"too many experts per token",
       "{\"model_type\": \"mixtral\", " + base +
           R"(, "num_local_experts": 2, "num_experts_per_tok": 3})",
       "num_experts_per_tok"},
      {"deepseek without mla", "{\"model_type\": \"deepseek_v3\", " + base + "}", "kv_lora_rank"},
      {"bad scoring", "{\"model_type\": \"llama\", " + base + R"(, "scoring_func": "relu"})",
       "scoring_func"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = ModelConfig::from_hf_json_text(c.json, "cfg.json");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("cfg.json"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().message();
  }
}

TEST(ModelConfig, FromHfFileMissing) {
  auto c = ModelConfig::from_hf_file(kFixtures + "no_such_config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
}

TEST(ModelConfig, FromTinyLlamaGguf) {
  auto f = GgufFile::open(kFixtures + "tiny.gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();
  auto c = ModelConfig::from_gguf(*f);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->model_type, "llama");
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->num_hidden_layers, 2);
  EXPECT_EQ(c->intermediate_size, 96);
  EXPECT_EQ(c->num_attention_heads, 4);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->max_position_embeddings, 128);
  EXPECT_EQ(c->vocab_size, 8);           // no llama.vocab_size: length of tokenizer.ggml.tokens
  EXPECT_FALSE(c->tie_word_embeddings);  // output.weight is present
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, static_cast<double>(1e-5f));
  EXPECT_EQ(c->rope_scaling.rope_type, "linear");
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 2.0);
  EXPECT_EQ(c->bos_token_id, 0);
  EXPECT_EQ(c->eos_token_id, (std::vector<int64_t>{1}));
}

TEST(ModelConfig, FromDeepseek2Gguf) {
  auto f = GgufFile::open(kFixtures + "deepseek2.gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();
  auto c = ModelConfig::from_gguf(*f);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->model_type, "deepseek_v3");  // sigmoid gating
  EXPECT_EQ(c->vocab_size, 1000);
  EXPECT_EQ(c->hidden_size, 256);
  EXPECT_EQ(c->intermediate_size, 512);
  EXPECT_EQ(c->num_hidden_layers, 4);
  EXPECT_EQ(c->num_attention_heads, 8);
  EXPECT_EQ(c->q_lora_rank, 96);
  EXPECT_EQ(c->kv_lora_rank, 64);
  EXPECT_EQ(c->qk_rope_head_dim, 16);
  EXPECT_EQ(c->qk_nope_head_dim, 32);  // key_length_mla 48 - rope 16
  EXPECT_EQ(c->v_head_dim, 32);        // value_length_mla
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->n_routed_experts, 16);
  EXPECT_EQ(c->num_experts_per_tok, 4);
  EXPECT_EQ(c->n_shared_experts, 1);
  EXPECT_EQ(c->moe_intermediate_size, 128);
  EXPECT_EQ(c->first_k_dense_replace, 1);
  EXPECT_EQ(c->n_group, 4);
  EXPECT_EQ(c->topk_group, 2);
  EXPECT_DOUBLE_EQ(c->routed_scaling_factor, 2.5);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_EQ(c->scoring_func, "sigmoid");
  EXPECT_EQ(c->topk_method, "noaux_tc");
  EXPECT_EQ(c->rope_scaling.rope_type, "yarn");
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 40.0);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 256);
  EXPECT_NEAR(c->rope_scaling.mscale_all_dim, 1.0, 1e-6);
  EXPECT_TRUE(c->tie_word_embeddings);  // metadata-only file: no output.weight
}

TEST(ModelConfig, FromSmolLm2Gguf) {
  const std::string path = std::string(TESSERA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent";
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  auto c = ModelConfig::from_gguf(*f);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->model_type, "llama");
  EXPECT_EQ(c->vocab_size, 49152);
  EXPECT_EQ(c->hidden_size, 576);
  EXPECT_EQ(c->intermediate_size, 1536);
  EXPECT_EQ(c->num_hidden_layers, 30);
  EXPECT_EQ(c->num_attention_heads, 9);
  EXPECT_EQ(c->num_key_value_heads, 3);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(c->rope_theta, 100000.0);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_id, (std::vector<int64_t>{2}));
  EXPECT_EQ(c->rope_scaling.rope_type, "default");
}

TEST(ModelConfig, UnsupportedGgufArchitecture) {
  // general.architecture = "gpt2": header, one string KV, no tensors.
  std::vector<uint8_t> b = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
  const auto u64 = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back((v >> (8 * i)) & 0xff);
  };
  const auto str = [&](const std::string& s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
  };
  u64(0);
  u64(1);
  str("general.architecture");
  b.insert(b.end(), {8, 0, 0, 0});
  str("gpt2");
  auto f = GgufFile::parse_buffer(b.data(), b.size(), "gpt2.gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();
  auto c = ModelConfig::from_gguf(*f);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(c.status().message().find("gpt2"), std::string::npos);
}

}  // namespace
}  // namespace tessera::model

// SyntheticWeights: a WeightSource of random weights at a real model's shapes (Llama-family,
// HF tensor names), so a decode step can be timed at 8B shapes without a checkpoint. Values are
// uniform in [-scale, scale) from a fixed-seed generator (the same every run).
// Invariant: tensors are generated once at construction and live as long as the source.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kernels/common/types.h"
#include "tessera/core/tensor.h"
#include "tessera/model/model_config.h"
#include "tessera/model/weights.h"

namespace tessera::bench {

// Llama-3-8B's architecture (config.json of meta-llama/Meta-Llama-3-8B) with `layers` layers.
inline model::ModelConfig llama3_8b_config(int64_t layers) {
  model::ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = 128256;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  c.max_position_embeddings = 8192;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  return c;
}

class SyntheticWeights final : public model::WeightSource {
 public:
  // Every Llama tensor of `config` in `dtype` (f32, f16 or bf16); norms are f32 ones-ish.
  SyntheticWeights(const model::ModelConfig& config, DType dtype) {
    const int64_t h = config.hidden_size, f = config.intermediate_size;
    const int64_t qd = config.num_attention_heads * config.head_dim;
    const int64_t kvd = config.num_key_value_heads * config.head_dim;
    add("model.embed_tokens.weight", dtype, config.vocab_size, h);
    add("lm_head.weight", dtype, config.vocab_size, h);
    add("model.norm.weight", DType::kF32, h, 0);
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      add(p + "input_layernorm.weight", DType::kF32, h, 0);
      add(p + "post_attention_layernorm.weight", DType::kF32, h, 0);
      add(p + "self_attn.q_proj.weight", dtype, qd, h);
      add(p + "self_attn.k_proj.weight", dtype, kvd, h);
      add(p + "self_attn.v_proj.weight", dtype, kvd, h);
      add(p + "self_attn.o_proj.weight", dtype, h, qd);
      add(p + "mlp.gate_proj.weight", dtype, f, h);
      add(p + "mlp.up_proj.weight", dtype, f, h);
      add(p + "mlp.down_proj.weight", dtype, h, f);
    }
  }

  model::WeightFormat format() const override { return model::WeightFormat::kSafetensors; }
  const std::string& path() const override { return path_; }
  std::optional<Tensor> find(std::string_view name) const override {
    auto it = tensors_.find(std::string(name));
    if (it == tensors_.end()) return std::nullopt;
    return it->second.view();
  }
  // Bytes of every tensor (what one decode step streams, less the unread embedding rows).
  int64_t total_bytes() const { return total_bytes_; }
  int64_t embedding_bytes() const {
    return tensors_.at("model.embed_tokens.weight").view().nbytes();
  }

 private:
  // A [rows, cols] matrix (cols == 0: a vector of `rows` values near 1).
  void add(const std::string& name, DType dtype, int64_t rows, int64_t cols) {
    OwnedTensor t = cols == 0 ? OwnedTensor(dtype, {rows}) : OwnedTensor(dtype, {rows, cols});
    const int64_t n = cols == 0 ? rows : rows * cols;
    const float scale = cols == 0 ? 0.1f : 1.0f / static_cast<float>(cols) * 8.0f;
    fill(t, dtype, n, cols == 0 ? 1.0f : 0.0f, scale, seed_++);
    total_bytes_ += t.view().nbytes();
    tensors_.emplace(name, std::move(t));
  }

  // Threaded fill: value = offset + scale * u, u uniform in [-1, 1) from a per-element hash.
  static void fill(OwnedTensor& t, DType dtype, int64_t n, float offset, float scale,
                   uint64_t seed) {
    const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> pool;
    for (unsigned w = 0; w < threads; ++w) {
      pool.emplace_back([&, w] {
        const int64_t begin = n * w / threads, end = n * (w + 1) / threads;
        for (int64_t i = begin; i < end; ++i) {
          uint64_t z = (static_cast<uint64_t>(i) + seed * 0x9e3779b97f4a7c15ull) *
                       0xbf58476d1ce4e5b9ull;
          z ^= z >> 31;
          z *= 0x94d049bb133111ebull;
          z ^= z >> 29;
          const float v = offset + scale * (static_cast<float>(z >> 40) / 8388608.0f - 1.0f);
          store(t, dtype, i, v);
        }
      });
    }
    for (auto& th : pool) th.join();
  }

  static void store(OwnedTensor& t, DType dtype, int64_t i, float v) {
    switch (dtype) {
      case DType::kF32:
        t.data_as<float>()[i] = v;
        return;
      case DType::kF16:
        t.data_as<uint16_t>()[i] = kernels::f32_to_f16(v);
        return;
      default:
        t.data_as<uint16_t>()[i] = kernels::f32_to_bf16(v);
        return;
    }
  }

  std::string path_ = "synthetic";
  std::map<std::string, OwnedTensor> tensors_;
  int64_t total_bytes_ = 0;
  uint64_t seed_ = 1;
};

}  // namespace tessera::bench

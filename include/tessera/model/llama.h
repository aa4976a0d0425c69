// LlamaModel: the Llama family (Llama 2/3, Mistral, Qwen2, SmolLM) written once against the
// Backend ops: RMSNorm, GQA attention with rotary embeddings (optionally scaled), SwiGLU MLP,
// tied or separate output head, optional q/k/v/o biases. Weights come from a WeightSource
// (GGUF or HF safetensors); the KV cache is per layer [max_context, n_kv_heads, head_dim].
// Weights, KV cache and workspace live in the backend's memory (uploaded / allocated at
// creation), so on a device backend forward() reads nothing of them on the host; logits are
// downloaded into the caller's host tensor.
// Invariant: all activations live in one workspace sized at creation for `max_chunk` tokens,
// so forward() never allocates; longer inputs run as several chunks.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "tessera/backend/backend.h"
#include "tessera/core/dtype.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/model/model.h"
#include "tessera/model/model_config.h"
#include "tessera/model/weights.h"

namespace tessera::model {

struct LlamaOptions {
  int32_t max_context = 0;       // KV capacity; 0: min(max_position_embeddings, 4096)
  int32_t max_chunk = 512;       // tokens per forward pass (workspace rows)
  DType kv_dtype = DType::kF32;  // f32 or f16
  // Rope pairing; nullopt picks it from the weight format (see rope_style_for()).
  std::optional<backend::RopeParams::Style> rope_style;
};

// The rope pairing that matches how a checkpoint stores Q/K rows.
// NOTE: HF Llama checkpoints rotate pairs (i, i + D/2) ("neox"). llama.cpp's GGUF converter
// permutes the rows of Q and K for the llama architecture so that its default rope, which
// rotates adjacent pairs (2i, 2i + 1), gives the same attention scores; so GGUF llama weights
// need kInterleaved. Architectures the converter leaves unpermuted (qwen2) keep kNeox.
backend::RopeParams::Style rope_style_for(WeightFormat format, const ModelConfig& config);

// RopeParams from the config's rope_theta / rope_scaling; unknown scaling types are an error.
Result<backend::RopeParams> rope_params_from_config(const ModelConfig& config,
                                                    backend::RopeParams::Style style);

class LlamaModel final : public Model {
 public:
  // `backend` must outlive the model; `weights` is kept alive by it.
  static Result<std::unique_ptr<LlamaModel>> create(const ModelConfig& config,
                                                    std::shared_ptr<const WeightSource> weights,
                                                    backend::Backend* backend,
                                                    const LlamaOptions& options = {});

  Status forward(std::span<const int32_t> tokens, int32_t start_pos, bool all_logits,
                 Tensor logits) override;
  Status forward_batch(const ForwardBatch& batch, PagedKvCache& cache, Tensor logits) override;
  void reserve_batch(int32_t max_num_tokens) override;
  void reset() override { num_cached_ = 0; }
  void truncate(int32_t num_tokens) override;
  int32_t num_cached_tokens() const override { return num_cached_; }
  int32_t max_context() const override { return max_context_; }
  const ModelConfig& config() const override { return config_; }
  backend::Backend* backend() const override { return backend_; }
  const backend::RopeParams& rope() const { return rope_; }

 private:
  struct Layer {
    Tensor attn_norm;             // f32 [hidden]
    Tensor wq, wk, wv, wo;        // [Hq*D, hidden], [Hkv*D, hidden] x2, [hidden, Hq*D]
    Tensor bq, bk, bv, bo;        // f32 biases; empty when absent
    Tensor ffn_norm;              // f32 [hidden]
    Tensor w_gate, w_up, w_down;  // [ffn, hidden] x2, [hidden, ffn]
    backend::BackendTensor k_cache;  // [max_context, Hkv, D]
    backend::BackendTensor v_cache;  // [max_context, Hkv, D]
  };
  // Activations for up to `rows` tokens (>= max_chunk), carved from one buffer.
  struct Workspace {
    backend::BackendTensor buffer;   // backend memory the tensors below are carved from
    Tensor x, xn, proj;              // f32 [C, hidden]
    Tensor q, attn;                  // f32 [C, Hq*D]
    Tensor k, v;                     // f32 [C, Hkv*D]
    Tensor gate, up;                 // f32 [C, ffn]
    std::vector<int32_t> positions;  // [C] host
    int64_t rows = 0;                // C
    backend::BackendTensor logits;   // device backends: f32 [L, vocab], grown on demand
  };

  LlamaModel() = default;
  Status load_weights(const WeightSource& weights);
  Result<Tensor> small_f32(const WeightSource& weights, LlamaWeight role, int layer, bool optional);
  Status allocate(const LlamaOptions& options);
  Status allocate_workspace(int64_t rows);
  // Backend-resident copy of a weight (free on host backends); kept alive by the model.
  Result<Tensor> resident(const Tensor& host);
  Status make_resident();  // every weight the forward reads
  // logits [n, vocab] (host) = xn [n, hidden] @ output^T, through backend memory on a device;
  // `in_backend`: logits is backend memory instead, written in place.
  Status head(const Tensor& xn, Tensor logits, bool in_backend = false);
  Status validate_batch(const ForwardBatch& batch, const PagedKvCache& cache,
                        const Tensor& logits) const;
  // Norm, Q/K/V projections (+ biases) and rope of workspace rows [0, t) at `positions`.
  Status project_qkv(Layer& layer, std::span<const int32_t> positions, int64_t num_tokens);
  Status paged_attention_block(Layer& layer, const ForwardBatch& batch, Tensor k_cache,
                               Tensor v_cache);
  Status forward_chunk(std::span<const int32_t> tokens, int32_t start_pos, bool want_logits,
                       bool all_logits, Tensor logits);
  Status attention_block(Layer& layer, int32_t start_pos, int64_t num_tokens);
  Status output_projection(Layer& layer, int64_t num_tokens);
  Status mlp_block(Layer& layer, int64_t num_tokens);
  Status add_bias(Tensor x, const Tensor& bias);  // x [T, N] += bias [N] per row

  ModelConfig config_;
  std::shared_ptr<const WeightSource> weights_;
  backend::Backend* backend_ = nullptr;
  backend::RopeParams rope_;
  int64_t hidden_ = 0, num_heads_ = 0, num_kv_heads_ = 0, head_dim_ = 0, ffn_ = 0;
  int32_t max_context_ = 0, max_chunk_ = 0, num_cached_ = 0;
  float eps_ = 1e-6f;
  Tensor token_embd_;   // [vocab, hidden]
  Tensor output_norm_;  // f32 [hidden]
  Tensor output_;       // [vocab, hidden] (token_embd_ when tied)
  std::vector<Layer> layers_;
  std::vector<OwnedTensor> converted_;  // f32 copies of non-f32 norms / biases
  std::vector<backend::BackendTensor> resident_;  // uploaded weights (device backends)
  Workspace ws_;
};

}  // namespace tessera::model

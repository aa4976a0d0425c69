// DeepseekModel: the MoE family written once against the Backend ops — DeepSeek-V2 / V2-Lite /
// V3 (multi-head latent attention, DeepSeekMoE with shared experts, YaRN) and Mixtral (GQA
// attention, block_sparse_moe). The packed forward_batch over a PagedKvCache is the one
// implementation; the single-sequence forward() runs it over a private paged cache.
// Weights (after load-time stacking / conversion), caches and workspace live in the backend's
// memory; logits are downloaded into the caller's host tensor on a device backend.
// Invariant: an MLA layer caches only [kv_lora_rank | qk_rope_head_dim] per token (the latent),
// never the per-head K/V; routed experts always run grouped (moe_route + moe_grouped_matmul).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tessera/backend/backend.h"
#include "tessera/core/dtype.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/model/model.h"
#include "tessera/model/model_config.h"
#include "tessera/model/paged_kv_cache.h"
#include "tessera/model/weights.h"

namespace tessera::model {

struct DeepseekOptions {
  int32_t max_context = 0;       // forward()'s cache capacity; 0: min(max_position, 4096)
  int32_t max_chunk = 512;       // tokens per forward() pass (workspace rows)
  DType kv_dtype = DType::kF32;  // forward()'s private cache: f32 or f16
  int32_t block_size = 16;       // forward()'s private cache block size
  // MLA attention path. kAbsorbed: q_nope x W_UK, attention over the latent cache, x W_UV.
  // kExpanded: per-head K/V expanded from the latent (kv_b_proj) for steps whose sequences
  // are all fresh prefills (else absorbed). kAuto: expanded for fresh prefills, absorbed
  // otherwise (decode, chunked prefill, mixed steps).
  enum class MlaPath { kAuto, kAbsorbed, kExpanded };
  MlaPath mla_path = MlaPath::kAuto;
};

// True for the model_types DeepseekModel serves (deepseek_v2, deepseek_v3, mixtral).
bool is_moe_family(const ModelConfig& config);

class DeepseekModel final : public Model {
 public:
  // `backend` must outlive the model; `weights` is kept alive by it.
  static Result<std::unique_ptr<DeepseekModel>> create(const ModelConfig& config,
                                                       std::shared_ptr<const WeightSource> weights,
                                                       backend::Backend* backend,
                                                       const DeepseekOptions& options = {});

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

  bool is_mla() const { return mla_; }
  // Attention softmax scale: qk_head_dim^-0.5, times yarn_get_mscale(factor, mscale_all_dim)^2
  // under YaRN (DeepSeek's correction); 1/sqrt(head_dim) for Mixtral.
  float softmax_scale() const { return scale_; }
  // Which MLA path the last forward_batch took (for tests).
  bool last_step_expanded() const { return last_expanded_; }

  // A linear layer's weight as stored plus its FP8 block scales (weight_scale_inv
  // [ceil(out/128), ceil(in/128)]) when the checkpoint has them. Every projection goes
  // through linear(), so FP8 support is one place.
  struct Projection {
    Tensor weight;     // [out, in] any matmul dtype
    Tensor scale_inv;  // f32 [ceil(out/128), ceil(in/128)] or empty
  };

 private:
  struct Mla {
    Projection q_proj, q_a_proj, q_b_proj, kv_a_proj, kv_b_proj, o_proj;  // see MoeWeight
    Tensor q_a_norm, kv_a_norm;  // f32 [q_lora_rank], f32 [kv_lora_rank]
    Tensor w_uk_t;               // f32 [H, kv_lora_rank, qk_nope]: per head W_UK^T (absorbed q)
    Tensor w_uv;                 // f32 [H, v_head_dim, kv_lora_rank]: per head W_UV
  };
  struct Gqa {
    Projection q, k, v, o;  // [Hq*D, hidden], [Hkv*D, hidden] x2, [hidden, Hq*D]
  };
  struct Mlp {
    Projection gate, up, down;  // [F, hidden] x2, [hidden, F]
  };
  struct Moe {
    Tensor router;                    // [E, hidden]
    Tensor bias;                      // f32 [E] or empty (e_score_correction_bias)
    Tensor w_gate, w_up, w_down;  // stacked [E, I, hidden] x2, [E, hidden, I]
    Tensor s_gate, s_up, s_down;  // FP8 only: stacked f32 scale_inv [E, ceil/128, ceil/128]
    Mlp shared;                       // empty weights when n_shared_experts == 0
  };
  struct Layer {
    Tensor attn_norm, ffn_norm;  // f32 [hidden]
    Mla mla;
    Gqa gqa;
    bool is_moe = false;
    Mlp mlp;  // dense layers
    Moe moe;
  };
  // Activations for up to `rows` tokens, each an f32 [rows, width] tensor (ids: i32).
  struct Workspace {
    std::vector<backend::BackendTensor> owned;
    Tensor x, xn, proj;           // [C, hidden]
    Tensor q;                     // [C, Hq * qk_head_dim]  (Mixtral: [C, Hq * D])
    Tensor qa;                    // [C, q_lora_rank]
    Tensor latent;                // [C, kv_lora_rank + qk_rope]  (Mixtral: k [C, Hkv * D])
    Tensor vv;                    // Mixtral: v [C, Hkv * D]
    Tensor q_abs;                 // [C, Hq * (kv_lora_rank + qk_rope)]
    Tensor attn_latent;           // [C, Hq * kv_lora_rank]
    Tensor kvb;                   // [C, Hq * (qk_nope + v_head_dim)]
    Tensor k_exp;                 // [C, Hq * qk_head_dim]
    Tensor attn;                  // [C, Hq * v_head_dim]
    Tensor gate, up;              // [C, max(intermediate, n_shared * moe_intermediate)]
    Tensor router_logits;         // [C, E]
    Tensor ids;                   // i32 [C, top_k]
    Tensor weights;               // [C, top_k]
    Tensor egate, eup;            // [C, top_k * moe_intermediate]
    Tensor edown;                 // [C, top_k * hidden]
    int64_t rows = 0;
    backend::BackendTensor logits;  // device backends: f32 [L, vocab], grown on demand
  };

  DeepseekModel() = default;
  Status load_weights();
  Status load_layer(int i, Layer& l);
  Status load_mla(int i, Mla& m);
  Status load_moe(int i, Moe& m);
  Result<Tensor> small_f32(const std::string& name, int64_t size, bool optional);
  Result<Projection> projection(const std::string& name, int64_t out, int64_t in,
                                bool optional = false);
  Status allocate_workspace(int64_t rows);
  // Backend-resident copies (free on host backends), kept alive by the model.
  Result<Tensor> resident(const Tensor& host);
  Result<Tensor> resident(OwnedTensor host);  // a load-time conversion: host copy dropped on
                                              // device backends
  Result<Projection> resident(const Projection& p);
  // logits [n, vocab] (host) = xn [n, hidden] @ lm_head^T, through backend memory on a device;
  // `in_backend`: logits is backend memory instead, written in place.
  Status head(const Tensor& xn, Tensor logits, bool in_backend = false);
  Status validate_batch(const ForwardBatch& b, const PagedKvCache& cache,
                        const Tensor& logits) const;

  Status linear(const Tensor& x, const Projection& p, Tensor out);  // out = x @ W^T
  Status mla_block(Layer& l, const ForwardBatch& b, Tensor k_cache, Tensor v_cache);
  Status mla_absorbed(Layer& l, const ForwardBatch& b, Tensor k_cache, Tensor v_cache);
  Status mla_expanded(Layer& l, const ForwardBatch& b);
  Status gqa_block(Layer& l, const ForwardBatch& b, Tensor k_cache, Tensor v_cache);
  Status ffn_block(Layer& l, int64_t t);
  Status dense_mlp(const Mlp& m, int64_t t, Tensor out);  // out [t, hidden] = mlp(xn)
  Status moe_block(Moe& m, int64_t t);                    // x += routed + shared of xn
  Status experts(const Tensor& x, const Tensor& w, const Tensor& scale, const Tensor& ids,
                 Tensor out);  // grouped matmul, FP8 when scale is set
  Status forward_chunk(std::span<const int32_t> tokens, int32_t start_pos, bool all_logits,
                       Tensor logits);

  ModelConfig config_;
  std::shared_ptr<const WeightSource> weights_;
  backend::Backend* backend_ = nullptr;
  DeepseekOptions options_;
  backend::RopeParams rope_;
  backend::MoeRouteParams route_;
  bool mla_ = false, last_expanded_ = false;
  float scale_ = 1.0f, eps_ = 1e-6f;
  int64_t hidden_ = 0, heads_ = 0, kv_heads_ = 0, head_dim_ = 0;
  int64_t q_lora_ = 0, kv_lora_ = 0, nope_ = 0, rope_dim_ = 0, v_dim_ = 0, qk_dim_ = 0;
  int64_t experts_ = 0, top_k_ = 0, moe_inter_ = 0;
  int32_t max_context_ = 0, max_chunk_ = 0, num_cached_ = 0;
  Tensor embed_, final_norm_, lm_head_;  // [vocab, hidden], f32 [hidden], [vocab, hidden]
  std::vector<Layer> layers_;
  std::vector<OwnedTensor> converted_;  // host conversions (stacks, W_UK/W_UV, f32 norms)
  std::vector<backend::BackendTensor> resident_;  // uploaded weights (device backends)
  Workspace ws_;
  PagedKvCache cache_;                  // forward()'s private cache, identity block table
  ForwardBatch step_;                   // forward()'s batch, reused
};

}  // namespace tessera::model

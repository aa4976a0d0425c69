// DeepseekModel: configuration, weight binding (HF names verbatim), workspace, and the
// forward passes: forward_batch over a paged cache, forward() as forward_batch over a private
// cache with an identity block table (see deepseek.h).
// Invariant: every layer's K/V (latent for MLA) is appended before its attention reads it;
// forward() leaves num_cached_tokens() at start_pos on failure.
#include "tessera/model/deepseek.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "src/model/batch_rows.h"
#include "src/model/forward_checks.h"
#include "tessera/core/logging.h"

namespace tessera::model {
namespace {

using backend::MoeRouteParams;
using backend::RopeParams;

Status expect_shape(const Tensor& t, std::initializer_list<int64_t> shape,
                    const std::string& what) {
  bool ok = t.ndim() == static_cast<int>(shape.size());
  int i = 0;
  for (int64_t d : shape) ok = ok && t.dim(i++) == d;
  if (ok) return {};
  std::string want;
  for (int64_t d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
  return data_loss("{}: shape {} does not match the config (expected [{}])", what, t.describe(),
                   want);
}

// transformers' yarn_get_mscale.
double yarn_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

bool is_moe_family(const ModelConfig& config) {
  return config.is_deepseek() || config.model_type == "mixtral";
}

Result<std::unique_ptr<DeepseekModel>> DeepseekModel::create(
    const ModelConfig& config, std::shared_ptr<const WeightSource> weights,
    backend::Backend* backend, const DeepseekOptions& options) {
  TESSERA_CHECK(backend != nullptr && weights != nullptr);
  if (!is_moe_family(config)) {
    return invalid_argument("DeepseekModel serves deepseek_v2, deepseek_v3 and mixtral, not '{}'",
                            config.model_type);
  }
  if (weights->format() != WeightFormat::kSafetensors) {
    return unimplemented("{}: {} checkpoints load from HF safetensors only (GGUF not yet)",
                         weights->path(), config.model_type);
  }
  if (options.kv_dtype != DType::kF32 && options.kv_dtype != DType::kF16) {
    return invalid_argument("kv cache dtype must be f32 or f16, not {}",
                            dtype_name(options.kv_dtype));
  }
  if (options.max_chunk <= 0 || options.block_size <= 0) {
    return invalid_argument("max_chunk and block_size must be positive");
  }
  if (config.hidden_act != "silu") {
    return unimplemented("hidden_act '{}' is not supported (silu only)", config.hidden_act);
  }
  if (config.attention_bias || config.mlp_bias) {
    return unimplemented("{}: attention_bias / mlp_bias are not supported for {}", weights->path(),
                         config.model_type);
  }
  std::unique_ptr<DeepseekModel> m(new DeepseekModel());
  m->config_ = config;
  m->weights_ = std::move(weights);
  m->backend_ = backend;
  m->options_ = options;
  m->mla_ = config.is_deepseek();
  m->eps_ = static_cast<float>(config.rms_norm_eps);
  m->hidden_ = config.hidden_size;
  m->heads_ = config.num_attention_heads;
  m->kv_heads_ = config.num_key_value_heads;
  m->head_dim_ = config.head_dim;
  m->q_lora_ = config.q_lora_rank;
  m->kv_lora_ = config.kv_lora_rank;
  m->nope_ = config.qk_nope_head_dim;
  m->rope_dim_ = config.qk_rope_head_dim;
  m->v_dim_ = config.v_head_dim;
  m->qk_dim_ = m->mla_ ? m->nope_ + m->rope_dim_ : m->head_dim_;
  m->experts_ = m->mla_ ? config.n_routed_experts : config.num_local_experts;
  m->top_k_ = config.num_experts_per_tok;
  m->moe_inter_ = m->mla_ ? config.moe_intermediate_size : config.intermediate_size;
  if (m->experts_ <= 0 || m->top_k_ <= 0 || m->top_k_ > m->experts_) {
    return invalid_argument("{}: {} routed experts with top {} is not a MoE model",
                            m->weights_->path(), m->experts_, m->top_k_);
  }

  // Rope: DeepSeek rotates adjacent pairs of the qk_rope part (transformers 5 de-interleaves
  // its output, a permutation shared by q and k, so scores are the same); Mixtral is neox.
  RopeParams& r = m->rope_;
  r.style = m->mla_ ? RopeParams::Style::kInterleaved : RopeParams::Style::kNeox;
  r.rot_dim = static_cast<int>(m->mla_ ? m->rope_dim_ : m->head_dim_);
  r.theta = static_cast<float>(config.rope_theta);
  const RopeScalingConfig& s = config.rope_scaling;
  double softmax_mscale = 1.0;
  if (s.rope_type.empty() || s.rope_type == "default" || s.rope_type == "none") {
    r.scaling = RopeParams::Scaling::kNone;
  } else if (s.rope_type == "yarn") {
    r.scaling = RopeParams::Scaling::kYarn;
    r.factor = static_cast<float>(s.factor);
    r.beta_fast = static_cast<float>(s.beta_fast);
    r.beta_slow = static_cast<float>(s.beta_slow);
    if (s.original_max_position_embeddings > 0) {
      r.original_max_position_embeddings = static_cast<int>(s.original_max_position_embeddings);
    }
    // cos/sin factor as transformers' _compute_yarn_parameters; the kernel uses r.mscale as is.
    const bool both = s.mscale != 0.0 && s.mscale_all_dim != 0.0;
    r.mscale = static_cast<float>(both ? yarn_mscale(s.factor, s.mscale) /
                                             yarn_mscale(s.factor, s.mscale_all_dim)
                                       : yarn_mscale(s.factor, 1.0));
    r.mscale_all_dim = static_cast<float>(s.mscale_all_dim);
    if (s.mscale_all_dim != 0.0) softmax_mscale = yarn_mscale(s.factor, s.mscale_all_dim);
  } else if (s.rope_type == "linear") {
    r.scaling = RopeParams::Scaling::kLinear;
    r.factor = static_cast<float>(s.factor);
  } else {
    return unimplemented("rope_scaling type '{}' is not supported for {} (default, linear, yarn)",
                         s.rope_type, config.model_type);
  }
  m->scale_ = static_cast<float>(softmax_mscale * softmax_mscale /
                                 std::sqrt(static_cast<double>(m->qk_dim_)));

  MoeRouteParams& route = m->route_;
  route.top_k = static_cast<int>(m->top_k_);
  if (config.model_type == "mixtral") {
    route.scoring = MoeRouteParams::Scoring::kSoftmax;
    route.norm_topk_prob = true;  // Mixtral always renormalises its top-k
  } else if (config.model_type == "deepseek_v3") {
    if (config.scoring_func != "sigmoid") {
      return unimplemented("deepseek_v3 scoring_func '{}' (sigmoid only)", config.scoring_func);
    }
    route.scoring = MoeRouteParams::Scoring::kSigmoid;
    route.n_group = static_cast<int>(std::max<int64_t>(1, config.n_group));
    route.topk_group = static_cast<int>(std::max<int64_t>(1, config.topk_group));
    route.norm_topk_prob = config.norm_topk_prob;
    route.routed_scaling_factor = static_cast<float>(config.routed_scaling_factor);
  } else {  // deepseek_v2
    route.scoring = MoeRouteParams::Scoring::kSoftmax;
    if (config.topk_method == "group_limited_greedy") {
      route.n_group = static_cast<int>(config.n_group);
      route.topk_group = static_cast<int>(config.topk_group);
    } else if (config.topk_method != "greedy") {
      return unimplemented("deepseek_v2 topk_method '{}' (greedy, group_limited_greedy)",
                           config.topk_method);
    }
    // NOTE: transformers' DeepseekV2TopkRouter never renormalises (norm_topk_prob ignored).
    route.norm_topk_prob = false;
    route.routed_scaling_factor = static_cast<float>(config.routed_scaling_factor);
  }

  TESSERA_RETURN_IF_ERROR(m->load_weights());
  const int64_t ctx =
      options.max_context > 0
          ? options.max_context
          : std::min<int64_t>(
                config.max_position_embeddings > 0 ? config.max_position_embeddings : 4096, 4096);
  m->max_context_ = static_cast<int32_t>(ctx);
  m->max_chunk_ = std::min<int32_t>(options.max_chunk, m->max_context_);
  const int32_t blocks = static_cast<int32_t>((ctx + options.block_size - 1) / options.block_size);
  TESSERA_ASSIGN_OR_RETURN(m->cache_, PagedKvCache::create(backend, config, blocks,
                                                           options.block_size, options.kv_dtype));
  TESSERA_RETURN_IF_ERROR(m->allocate_workspace(m->max_chunk_));
  return m;
}

// A norm weight or bias as f32: the mapped tensor if already f32, else a converted copy.
Result<Tensor> DeepseekModel::small_f32(const std::string& name, int64_t size, bool optional) {
  std::optional<Tensor> t = weights_->find(name);
  if (!t) {
    if (optional) return Tensor();
    return make_error(StatusCode::kNotFound, "{}: missing tensor '{}'", weights_->path(), name);
  }
  TESSERA_RETURN_IF_ERROR(expect_shape(*t, {size}, name));
  if (t->dtype() == DType::kF32) return resident(*t);
  OwnedTensor copy(DType::kF32, {size});
  convert_to_f32(t->dtype(), t->data(), copy.data_as<float>(), size);
  return resident(std::move(copy));
}

Result<Tensor> DeepseekModel::resident(const Tensor& host) {
  if (host.empty()) return host;
  TESSERA_ASSIGN_OR_RETURN(backend::BackendTensor t, backend_->upload(host));
  Tensor view = t.view;
  if (t.storage != nullptr) resident_.push_back(std::move(t));
  return view;
}

Result<Tensor> DeepseekModel::resident(OwnedTensor host) {
  if (backend_->is_device()) return resident(host.view());  // the host copy dies here
  Tensor view = host.view();
  converted_.push_back(std::move(host));
  return view;
}

Result<DeepseekModel::Projection> DeepseekModel::resident(const Projection& p) {
  Projection out;
  TESSERA_ASSIGN_OR_RETURN(out.weight, resident(p.weight));
  TESSERA_ASSIGN_OR_RETURN(out.scale_inv, resident(p.scale_inv));
  return out;
}

Status DeepseekModel::head(const Tensor& xn, Tensor logits, bool in_backend) {
  if (!backend_->is_device() || in_backend) return backend_->matmul(xn, lm_head_, logits);
  const int64_t n = xn.dim(0);
  if (ws_.logits.view.empty() || ws_.logits.view.dim(0) < n) {
    TESSERA_ASSIGN_OR_RETURN(ws_.logits, backend_->allocate(DType::kF32, {n, config_.vocab_size}));
  }
  Tensor dev = ws_.logits.view.slice_rows(0, n);
  TESSERA_RETURN_IF_ERROR(backend_->matmul(xn, lm_head_, dev));
  return backend_->download(dev, logits);
}

Result<DeepseekModel::Projection> DeepseekModel::projection(const std::string& name, int64_t out,
                                                            int64_t in, bool optional) {
  Projection p;
  std::optional<Tensor> w = weights_->find(name);
  if (!w) {
    if (optional) return p;
    return make_error(StatusCode::kNotFound, "{}: missing tensor '{}' (is this a {} checkpoint?)",
                      weights_->path(), name, config_.model_type);
  }
  TESSERA_RETURN_IF_ERROR(expect_shape(*w, {out, in}, name));
  p.weight = *w;
  if (std::optional<Tensor> s = weights_->find(scale_inv_name(name))) {
    TESSERA_RETURN_IF_ERROR(
        expect_shape(*s, {(out + 127) / 128, (in + 127) / 128}, scale_inv_name(name)));
    p.scale_inv = *s;
  }
  return resident(p);
}

Status DeepseekModel::linear(const Tensor& x, const Projection& p, Tensor out) {
  if (!p.scale_inv.empty()) {  // FP8 e4m3 with [128, 128] block scales (DeepSeek-V3)
    return backend_->matmul_block_scaled(x, p.weight, p.scale_inv, backend::BlockScaleParams{},
                                         out);
  }
  return backend_->matmul(x, p.weight, out);
}

Status DeepseekModel::load_weights() {
  const WeightSource& w = *weights_;
  const int64_t vocab = config_.vocab_size;
  TESSERA_ASSIGN_OR_RETURN(const Tensor embed_host, w.require(LlamaWeight::kTokenEmbd));
  TESSERA_RETURN_IF_ERROR(expect_shape(embed_host, {vocab, hidden_}, "token embedding"));
  TESSERA_ASSIGN_OR_RETURN(embed_, resident(embed_host));
  TESSERA_ASSIGN_OR_RETURN(
      final_norm_,
      small_f32(llama_weight_name(w.format(), LlamaWeight::kOutputNorm, 0), hidden_, false));
  std::optional<Tensor> head = w.find(LlamaWeight::kOutput);
  TESSERA_RETURN_IF_ERROR(expect_shape(head ? *head : embed_host, {vocab, hidden_}, "lm_head"));
  if (head) {
    TESSERA_ASSIGN_OR_RETURN(lm_head_, resident(*head));
  } else {
    lm_head_ = embed_;  // tied
  }
  layers_.resize(config_.num_hidden_layers);
  for (int i = 0; i < static_cast<int>(layers_.size()); ++i) {
    TESSERA_RETURN_IF_ERROR(load_layer(i, layers_[i]));
  }
  const std::string mtp = fmt::format("model.layers.{}.", config_.num_hidden_layers);
  if (w.find(mtp + "input_layernorm.weight") || w.find(mtp + "eh_proj.weight")) {
    TESSERA_LOG_INFO("{}: skipping multi-token-prediction layer(s) from index {} (not used)",
                     w.path(), config_.num_hidden_layers);
  }
  return {};
}

Status DeepseekModel::load_layer(int i, Layer& l) {
  const WeightSource& w = *weights_;
  auto name = [&](LlamaWeight role) { return llama_weight_name(w.format(), role, i); };
  TESSERA_ASSIGN_OR_RETURN(l.attn_norm, small_f32(name(LlamaWeight::kAttnNorm), hidden_, false));
  TESSERA_ASSIGN_OR_RETURN(l.ffn_norm, small_f32(name(LlamaWeight::kFfnNorm), hidden_, false));
  if (mla_) {
    TESSERA_RETURN_IF_ERROR(load_mla(i, l.mla));
  } else {
    const int64_t qd = heads_ * head_dim_, kvd = kv_heads_ * head_dim_;
    TESSERA_ASSIGN_OR_RETURN(l.gqa.q, projection(name(LlamaWeight::kAttnQ), qd, hidden_));
    TESSERA_ASSIGN_OR_RETURN(l.gqa.k, projection(name(LlamaWeight::kAttnK), kvd, hidden_));
    TESSERA_ASSIGN_OR_RETURN(l.gqa.v, projection(name(LlamaWeight::kAttnV), kvd, hidden_));
    TESSERA_ASSIGN_OR_RETURN(l.gqa.o, projection(name(LlamaWeight::kAttnOut), hidden_, qd));
  }
  // transformers: DeepSeek layers below first_k_dense_replace are dense (moe_layer_freq is
  // ignored, as there); every Mixtral layer is MoE.
  l.is_moe = !mla_ || i >= config_.first_k_dense_replace;
  if (l.is_moe) return load_moe(i, l.moe);
  const int64_t f = config_.intermediate_size;
  TESSERA_ASSIGN_OR_RETURN(l.mlp.gate, projection(name(LlamaWeight::kFfnGate), f, hidden_));
  TESSERA_ASSIGN_OR_RETURN(l.mlp.up, projection(name(LlamaWeight::kFfnUp), f, hidden_));
  TESSERA_ASSIGN_OR_RETURN(l.mlp.down, projection(name(LlamaWeight::kFfnDown), hidden_, f));
  return {};
}

Status DeepseekModel::load_mla(int i, Mla& m) {
  auto name = [&](MoeWeight role) { return moe_weight_name(config_.model_type, role, i); };
  const int64_t qk_all = heads_ * qk_dim_;
  if (q_lora_ > 0) {
    TESSERA_ASSIGN_OR_RETURN(m.q_a_proj, projection(name(MoeWeight::kQAProj), q_lora_, hidden_));
    TESSERA_ASSIGN_OR_RETURN(m.q_a_norm, small_f32(name(MoeWeight::kQANorm), q_lora_, false));
    TESSERA_ASSIGN_OR_RETURN(m.q_b_proj, projection(name(MoeWeight::kQBProj), qk_all, q_lora_));
  } else {
    TESSERA_ASSIGN_OR_RETURN(m.q_proj, projection(name(MoeWeight::kQProj), qk_all, hidden_));
  }
  TESSERA_ASSIGN_OR_RETURN(m.kv_a_proj,
                           projection(name(MoeWeight::kKvAProj), kv_lora_ + rope_dim_, hidden_));
  TESSERA_ASSIGN_OR_RETURN(m.kv_a_norm, small_f32(name(MoeWeight::kKvANorm), kv_lora_, false));
  TESSERA_ASSIGN_OR_RETURN(
      m.kv_b_proj, projection(name(MoeWeight::kKvBProj), heads_ * (nope_ + v_dim_), kv_lora_));
  TESSERA_ASSIGN_OR_RETURN(m.o_proj, projection(name(MoeWeight::kOProj), hidden_, heads_ * v_dim_));
  // Absorbed-path matrices from kv_b_proj [H * (nope + v), r]: head h's rows
  // [h*(nope+v), +nope) are W_UK_h [nope, r] and the next v rows W_UV_h [v, r].
  // Read on the host from the mapped checkpoint (m.kv_b_proj is backend memory).
  const Tensor kvb = *weights_->find(name(MoeWeight::kKvBProj));
  std::optional<Tensor> kvb_scale_opt = weights_->find(scale_inv_name(name(MoeWeight::kKvBProj)));
  const Tensor kvb_scale = kvb_scale_opt ? *kvb_scale_opt : Tensor();  // FP8 block scales
  std::vector<float> row(kv_lora_);
  OwnedTensor w_uk_t(DType::kF32, {heads_, kv_lora_, nope_});
  OwnedTensor w_uv(DType::kF32, {heads_, v_dim_, kv_lora_});
  float* uk = w_uk_t.data_as<float>();
  float* uv = w_uv.data_as<float>();
  const char* base = static_cast<const char*>(kvb.data());
  for (int64_t h = 0; h < heads_; ++h) {
    for (int64_t j = 0; j < nope_ + v_dim_; ++j) {
      const int64_t r = h * (nope_ + v_dim_) + j;
      convert_to_f32(kvb.dtype(), base + r * kvb.stride_bytes(0), row.data(), kv_lora_);
      if (!kvb_scale.empty()) {
        const char* srow =
            static_cast<const char*>(kvb_scale.data()) + (r / 128) * kvb_scale.stride_bytes(0);
        for (int64_t c = 0; c < kv_lora_; ++c) {
          row[c] *= reinterpret_cast<const float*>(srow)[c / 128];
        }
      }
      if (j < nope_) {
        for (int64_t c = 0; c < kv_lora_; ++c) uk[(h * kv_lora_ + c) * nope_ + j] = row[c];
      } else {
        std::memcpy(uv + (h * v_dim_ + (j - nope_)) * kv_lora_, row.data(), kv_lora_ * 4);
      }
    }
  }
  TESSERA_ASSIGN_OR_RETURN(m.w_uk_t, resident(std::move(w_uk_t)));
  TESSERA_ASSIGN_OR_RETURN(m.w_uv, resident(std::move(w_uv)));
  return {};
}

Status DeepseekModel::allocate_workspace(int64_t c) {
  ws_.owned.clear();
  Status status;
  auto alloc = [&](DType dtype, int64_t width) {
    Result<backend::BackendTensor> t = backend_->allocate(dtype, {c, std::max<int64_t>(1, width)});
    if (!t.ok()) {
      if (status.ok()) status = t.status();
      return Tensor();
    }
    ws_.owned.push_back(std::move(t).value());
    return ws_.owned.back().view;
  };
  auto f32 = [&](int64_t width) { return alloc(DType::kF32, width); };
  const int64_t lat = kv_lora_ + rope_dim_;
  const int64_t ffn = std::max(config_.intermediate_size,
                               std::max<int64_t>(1, config_.n_shared_experts) * moe_inter_);
  ws_.x = f32(hidden_);
  ws_.xn = f32(hidden_);
  ws_.proj = f32(hidden_);
  ws_.q = f32(heads_ * qk_dim_);
  ws_.qa = f32(q_lora_);
  ws_.latent = f32(mla_ ? lat : kv_heads_ * head_dim_);
  ws_.vv = f32(mla_ ? 1 : kv_heads_ * head_dim_);
  ws_.q_abs = f32(heads_ * lat);
  ws_.attn_latent = f32(heads_ * kv_lora_);
  ws_.kvb = f32(heads_ * (nope_ + v_dim_));
  ws_.k_exp = f32(heads_ * qk_dim_);
  ws_.attn = f32(heads_ * (mla_ ? v_dim_ : head_dim_));
  ws_.gate = f32(ffn);
  ws_.up = f32(ffn);
  ws_.router_logits = f32(experts_);
  ws_.ids = alloc(DType::kI32, top_k_);
  ws_.weights = f32(top_k_);
  ws_.egate = f32(top_k_ * moe_inter_);
  ws_.eup = f32(top_k_ * moe_inter_);
  ws_.edown = f32(top_k_ * hidden_);
  ws_.rows = c;
  return status;
}

void DeepseekModel::reserve_batch(int32_t max_num_tokens) {
  if (max_num_tokens <= ws_.rows) return;
  Status s = allocate_workspace(max_num_tokens);
  TESSERA_CHECK(s.ok(), "workspace for {} tokens: {}", max_num_tokens, s.message());
}

void DeepseekModel::truncate(int32_t num_tokens) {
  TESSERA_CHECK(num_tokens >= 0 && num_tokens <= num_cached_, "truncate to {} of {} cached",
                num_tokens, num_cached_);
  num_cached_ = num_tokens;
}

Status DeepseekModel::forward(std::span<const int32_t> tokens, int32_t start_pos, bool all_logits,
                              Tensor logits) {
  TESSERA_RETURN_IF_ERROR(check_forward_args(tokens, start_pos, num_cached_, max_context_,
                                             all_logits, logits, config_.vocab_size));
  const int64_t n = static_cast<int64_t>(tokens.size());
  num_cached_ = start_pos;
  for (int64_t begin = 0; begin < n; begin += max_chunk_) {
    const int64_t end = std::min(n, begin + max_chunk_);
    const bool last = end == n;
    if (!all_logits && !last) {
      // Only the final chunk produces the requested row; earlier chunks still fill the cache.
      Status s = forward_chunk(tokens.subspan(begin, end - begin),
                               start_pos + static_cast<int32_t>(begin), false, Tensor());
      if (!s.ok()) return num_cached_ = start_pos, s;
      continue;
    }
    Tensor out = all_logits ? logits.slice_rows(begin, end) : logits;
    Status s = forward_chunk(tokens.subspan(begin, end - begin),
                             start_pos + static_cast<int32_t>(begin), all_logits, out);
    if (!s.ok()) return num_cached_ = start_pos, s;
  }
  num_cached_ = start_pos + static_cast<int32_t>(n);
  return {};
}

// One chunk as a one-sequence paged step over the private cache (block i = logical block i).
// `logits` empty: no logits wanted.
Status DeepseekModel::forward_chunk(std::span<const int32_t> tokens, int32_t start_pos,
                                    bool all_logits, Tensor logits) {
  const int32_t t = static_cast<int32_t>(tokens.size());
  ForwardBatch& b = step_;
  b.clear();
  b.tokens.assign(tokens.begin(), tokens.end());
  for (int32_t i = 0; i < t; ++i) {
    b.positions.push_back(start_pos + i);
    b.slot_mapping.push_back(start_pos + i);
  }
  b.query_start = {0, t};
  b.seq_lens = {start_pos + t};
  b.max_blocks_per_seq = cache_.num_blocks();
  for (int32_t i = 0; i < cache_.num_blocks(); ++i) b.block_tables.push_back(i);
  if (!logits.empty()) {
    for (int32_t i = all_logits ? 0 : t - 1; i < t; ++i) b.logits_indices.push_back(i);
  }
  Tensor out =
      logits.empty() ? Tensor(ws_.proj.data(), DType::kF32, {0, config_.vocab_size}) : logits;
  return forward_batch(b, cache_, out);
}

Status DeepseekModel::validate_batch(const ForwardBatch& b, const PagedKvCache& cache,
                                     const Tensor& logits) const {
  TESSERA_RETURN_IF_ERROR(check_forward_batch(b, cache, config_.vocab_size, max_context_, logits));
  return check_cache_geometry(cache, static_cast<int64_t>(layers_.size()), mla_ ? 1 : kv_heads_,
                              mla_ ? kv_lora_ + rope_dim_ : head_dim_, mla_);
}

Status DeepseekModel::forward_batch(const ForwardBatch& b, PagedKvCache& cache, Tensor logits) {
  TESSERA_RETURN_IF_ERROR(validate_batch(b, cache, logits));
  const int64_t t = b.num_tokens();
  if (t > ws_.rows) TESSERA_RETURN_IF_ERROR(allocate_workspace(t));  // past every earlier size
  TESSERA_RETURN_IF_ERROR(backend_->embedding(embed_, b.tokens_operand(), ws_.x.slice_rows(0, t)));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int layer = static_cast<int>(i);
    Layer& l = layers_[i];
    TESSERA_RETURN_IF_ERROR(
        backend_->rms_norm(ws_.x.slice_rows(0, t), l.attn_norm, eps_, ws_.xn.slice_rows(0, t)));
    if (mla_) {
      TESSERA_RETURN_IF_ERROR(mla_block(l, b, cache.k(layer), cache.v(layer)));
    } else {
      TESSERA_RETURN_IF_ERROR(gqa_block(l, b, cache.k(layer), cache.v(layer)));
    }
    TESSERA_RETURN_IF_ERROR(ffn_block(l, t));
  }
  const int64_t n = b.num_logits();
  if (n == 0) return {};
  Tensor rows = ws_.proj.slice_rows(0, n), xn = ws_.xn.slice_rows(0, n);
  TESSERA_RETURN_IF_ERROR(
      gather_rows(*backend_, ws_.x.slice_rows(0, b.num_tokens()), b.logits_indices, rows));
  TESSERA_RETURN_IF_ERROR(backend_->rms_norm(rows, final_norm_, eps_, xn));
  return head(xn, logits, b.logits_in_backend);
}

}  // namespace tessera::model

// LlamaModel: weight binding, workspace layout and the per-chunk forward pass (see llama.h).
// Invariant: forward_chunk touches only workspace rows [0, T) and cache rows [0, start + T);
// K/V of a chunk are written to the cache before its attention reads them.
#include "tessera/model/llama.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "src/model/forward_checks.h"
#include "tessera/core/logging.h"

namespace tessera::model {
namespace {

using backend::RopeParams;

std::string shape_string(const Tensor& t) { return t.describe(); }

Status expect_shape(const Tensor& t, std::initializer_list<int64_t> shape, std::string_view what) {
  bool ok = t.ndim() == static_cast<int>(shape.size());
  int i = 0;
  for (int64_t d : shape) {
    ok = ok && t.dim(i) == d;
    ++i;
  }
  if (!ok) {
    std::string want;
    for (int64_t d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
    return data_loss("{}: shape {} does not match the config (expected [{}])", what,
                     shape_string(t), want);
  }
  return {};
}

}  // namespace

RopeParams::Style rope_style_for(WeightFormat format, const ModelConfig& config) {
  switch (format) {
    case WeightFormat::kGguf:
      // Only llama-architecture GGUFs (Llama, Mistral, SmolLM...) have permuted Q/K rows.
      return config.model_type == "qwen2" ? RopeParams::Style::kNeox
                                          : RopeParams::Style::kInterleaved;
    case WeightFormat::kSafetensors:
      return RopeParams::Style::kNeox;
  }
  return RopeParams::Style::kNeox;
}

Result<RopeParams> rope_params_from_config(const ModelConfig& config, RopeParams::Style style) {
  RopeParams p;
  p.style = style;
  p.rot_dim = static_cast<int>(config.head_dim);
  p.theta = static_cast<float>(config.rope_theta);
  const RopeScalingConfig& s = config.rope_scaling;
  p.factor = static_cast<float>(s.factor);
  p.low_freq_factor = static_cast<float>(s.low_freq_factor);
  p.high_freq_factor = static_cast<float>(s.high_freq_factor);
  if (s.original_max_position_embeddings > 0) {
    p.original_max_position_embeddings = static_cast<int>(s.original_max_position_embeddings);
  }
  p.beta_fast = static_cast<float>(s.beta_fast);
  p.beta_slow = static_cast<float>(s.beta_slow);
  p.mscale = static_cast<float>(s.mscale);
  p.mscale_all_dim = static_cast<float>(s.mscale_all_dim);
  if (s.rope_type.empty() || s.rope_type == "default" || s.rope_type == "none") {
    p.scaling = RopeParams::Scaling::kNone;
    p.factor = 1.0f;
  } else if (s.rope_type == "linear") {
    p.scaling = RopeParams::Scaling::kLinear;
  } else if (s.rope_type == "llama3") {
    p.scaling = RopeParams::Scaling::kLlama3;
  } else if (s.rope_type == "yarn") {
    p.scaling = RopeParams::Scaling::kYarn;
    // NOTE: the rope op takes the final cos/sin scale, not the config's raw mscale.
    p.mscale = static_cast<float>(yarn_attention_factor(s));
  } else {
    return unimplemented(
        "rope_scaling type '{}' is not supported (supported: default, linear, "
        "llama3, yarn)",
        s.rope_type);
  }
  return p;
}

Result<std::unique_ptr<LlamaModel>> LlamaModel::create(const ModelConfig& config,
                                                       std::shared_ptr<const WeightSource> weights,
                                                       backend::Backend* backend,
                                                       const LlamaOptions& options) {
  TESSERA_CHECK(backend != nullptr && weights != nullptr);
  if (config.num_attention_heads <= 0 || config.num_key_value_heads <= 0 ||
      config.num_attention_heads % config.num_key_value_heads != 0 || config.head_dim <= 0) {
    return invalid_argument("bad attention geometry: {} heads, {} kv heads, head_dim {}",
                            config.num_attention_heads, config.num_key_value_heads,
                            config.head_dim);
  }
  if (options.kv_dtype != DType::kF32 && options.kv_dtype != DType::kF16) {
    return invalid_argument("kv cache dtype must be f32 or f16, not {}",
                            dtype_name(options.kv_dtype));
  }
  if (options.max_chunk <= 0) return invalid_argument("max_chunk must be positive");
  if (config.mlp_bias)
    return unimplemented(
        "mlp_bias (biases on the MLP projections) is not "
        "supported by the Llama model yet");

  std::unique_ptr<LlamaModel> m(new LlamaModel());
  m->config_ = config;
  m->weights_ = std::move(weights);
  m->backend_ = backend;
  m->hidden_ = config.hidden_size;
  m->num_heads_ = config.num_attention_heads;
  m->num_kv_heads_ = config.num_key_value_heads;
  m->head_dim_ = config.head_dim;
  m->ffn_ = config.intermediate_size;
  m->eps_ = static_cast<float>(config.rms_norm_eps);
  RopeParams::Style style =
      options.rope_style.value_or(rope_style_for(m->weights_->format(), config));
  TESSERA_ASSIGN_OR_RETURN(m->rope_, rope_params_from_config(config, style));
  if (m->weights_->find("rope_freqs.weight") && m->rope_.scaling != RopeParams::Scaling::kLlama3) {
    return unimplemented(
        "{}: per-dimension rope_freqs tensors are not supported unless the "
        "config names llama3 rope scaling",
        m->weights_->path());
  }
  TESSERA_RETURN_IF_ERROR(m->load_weights(*m->weights_));
  TESSERA_RETURN_IF_ERROR(m->make_resident());
  TESSERA_RETURN_IF_ERROR(m->allocate(options));
  return m;
}

// A norm weight or bias as f32: the mapped tensor if already f32, else a converted copy.
Result<Tensor> LlamaModel::small_f32(const WeightSource& weights, LlamaWeight role, int layer,
                                     bool optional) {
  std::optional<Tensor> t = weights.find(role, layer);
  if (!t) {
    if (optional) return Tensor();
    return weights.require(role, layer).status();
  }
  if (t->ndim() != 1) {
    return data_loss("{}: '{}' should be a vector, is {}", weights.path(),
                     llama_weight_name(weights.format(), role, layer), t->describe());
  }
  if (t->dtype() == DType::kF32) return *t;
  OwnedTensor copy(DType::kF32, {t->dim(0)});
  convert_to_f32(t->dtype(), t->data(), copy.data_as<float>(), t->dim(0));
  Tensor view = copy.view();
  converted_.push_back(std::move(copy));
  return view;
}

Status LlamaModel::load_weights(const WeightSource& w) {
  const int64_t h = hidden_, qd = num_heads_ * head_dim_, kvd = num_kv_heads_ * head_dim_;
  const int64_t vocab = config_.vocab_size;
  TESSERA_ASSIGN_OR_RETURN(token_embd_, w.require(LlamaWeight::kTokenEmbd));
  TESSERA_RETURN_IF_ERROR(expect_shape(token_embd_, {vocab, h}, "token embedding"));
  TESSERA_ASSIGN_OR_RETURN(output_norm_, small_f32(w, LlamaWeight::kOutputNorm, 0, false));
  TESSERA_RETURN_IF_ERROR(expect_shape(output_norm_, {h}, "output norm"));
  std::optional<Tensor> out = w.find(LlamaWeight::kOutput);
  output_ = out ? *out : token_embd_;  // tied when the file has no separate head
  TESSERA_RETURN_IF_ERROR(expect_shape(output_, {vocab, h}, "output head"));

  layers_.resize(config_.num_hidden_layers);
  for (int i = 0; i < static_cast<int>(layers_.size()); ++i) {
    Layer& l = layers_[i];
    TESSERA_ASSIGN_OR_RETURN(l.attn_norm, small_f32(w, LlamaWeight::kAttnNorm, i, false));
    TESSERA_ASSIGN_OR_RETURN(l.ffn_norm, small_f32(w, LlamaWeight::kFfnNorm, i, false));
    TESSERA_ASSIGN_OR_RETURN(l.wq, w.require(LlamaWeight::kAttnQ, i));
    TESSERA_ASSIGN_OR_RETURN(l.wk, w.require(LlamaWeight::kAttnK, i));
    TESSERA_ASSIGN_OR_RETURN(l.wv, w.require(LlamaWeight::kAttnV, i));
    TESSERA_ASSIGN_OR_RETURN(l.wo, w.require(LlamaWeight::kAttnOut, i));
    TESSERA_ASSIGN_OR_RETURN(l.w_gate, w.require(LlamaWeight::kFfnGate, i));
    TESSERA_ASSIGN_OR_RETURN(l.w_up, w.require(LlamaWeight::kFfnUp, i));
    TESSERA_ASSIGN_OR_RETURN(l.w_down, w.require(LlamaWeight::kFfnDown, i));
    TESSERA_ASSIGN_OR_RETURN(l.bq, small_f32(w, LlamaWeight::kAttnQBias, i, true));
    TESSERA_ASSIGN_OR_RETURN(l.bk, small_f32(w, LlamaWeight::kAttnKBias, i, true));
    TESSERA_ASSIGN_OR_RETURN(l.bv, small_f32(w, LlamaWeight::kAttnVBias, i, true));
    TESSERA_ASSIGN_OR_RETURN(l.bo, small_f32(w, LlamaWeight::kAttnOutBias, i, true));
    const std::string at = fmt::format("layer {} ", i);
    TESSERA_RETURN_IF_ERROR(expect_shape(l.attn_norm, {h}, at + "attn norm"));
    TESSERA_RETURN_IF_ERROR(expect_shape(l.ffn_norm, {h}, at + "ffn norm"));
    TESSERA_RETURN_IF_ERROR(expect_shape(l.wq, {qd, h}, at + "q proj"));
    TESSERA_RETURN_IF_ERROR(expect_shape(l.wk, {kvd, h}, at + "k proj"));
    TESSERA_RETURN_IF_ERROR(expect_shape(l.wv, {kvd, h}, at + "v proj"));
    TESSERA_RETURN_IF_ERROR(expect_shape(l.wo, {h, qd}, at + "o proj"));
    TESSERA_RETURN_IF_ERROR(expect_shape(l.w_gate, {ffn_, h}, at + "gate proj"));
    TESSERA_RETURN_IF_ERROR(expect_shape(l.w_up, {ffn_, h}, at + "up proj"));
    TESSERA_RETURN_IF_ERROR(expect_shape(l.w_down, {h, ffn_}, at + "down proj"));
    if (!l.bq.empty()) TESSERA_RETURN_IF_ERROR(expect_shape(l.bq, {qd}, at + "q bias"));
    if (!l.bk.empty()) TESSERA_RETURN_IF_ERROR(expect_shape(l.bk, {kvd}, at + "k bias"));
    if (!l.bv.empty()) TESSERA_RETURN_IF_ERROR(expect_shape(l.bv, {kvd}, at + "v bias"));
    if (!l.bo.empty()) TESSERA_RETURN_IF_ERROR(expect_shape(l.bo, {h}, at + "o bias"));
  }
  return {};
}

// A [rows, cols] block-quantized (GGUF) weight dequantised to f16, row by row.
static OwnedTensor dequantize_to_f16(const Tensor& w) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  OwnedTensor out(DType::kF16, {rows, cols});
  std::vector<float> row(static_cast<size_t>(cols));
  auto* dst = out.data_as<uint16_t>();
  for (int64_t r = 0; r < rows; ++r) {
    convert_to_f32(w.dtype(), static_cast<const char*>(w.data()) + r * w.stride_bytes(0),
                   row.data(), cols);
    for (int64_t c = 0; c < cols; ++c) dst[r * cols + c] = kernels::f32_to_f16(row[c]);
  }
  return out;
}

Result<Tensor> LlamaModel::resident(const Tensor& host) {
  if (host.empty()) return host;
  // NOTE: a backend with no kernel for a GGUF block type gets the weight dequantised to f16
  // once here, so GGUF models run there at f16 size (docs/cuda.md). The token embedding (also
  // the tied head) stays quantised only when both its embedding and its matmul have kernels.
  const bool is_embd = host.data() == token_embd_.data();
  const bool kept =
      backend_->supports(backend::Op::kMatmul, host.dtype(), DType::kF32) &&
      (!is_embd || backend_->supports(backend::Op::kEmbedding, host.dtype(), DType::kF32));
  if (dtype_info(host.dtype()).is_quantized && host.ndim() == 2 && !kept) {
    OwnedTensor plain = dequantize_to_f16(host);
    TESSERA_ASSIGN_OR_RETURN(backend::BackendTensor t, backend_->upload(plain.view()));
    Tensor view = t.view;
    if (t.storage != nullptr) {
      resident_.push_back(std::move(t));
    } else {
      converted_.push_back(std::move(plain));
    }
    return view;
  }
  TESSERA_ASSIGN_OR_RETURN(backend::BackendTensor t, backend_->upload(host));
  Tensor view = t.view;
  if (t.storage != nullptr) resident_.push_back(std::move(t));
  return view;
}

Status LlamaModel::make_resident() {
  const bool tied = output_.data() == token_embd_.data();
  TESSERA_ASSIGN_OR_RETURN(token_embd_, resident(token_embd_));
  if (tied) {
    output_ = token_embd_;
  } else {
    TESSERA_ASSIGN_OR_RETURN(output_, resident(output_));
  }
  TESSERA_ASSIGN_OR_RETURN(output_norm_, resident(output_norm_));
  for (Layer& l : layers_) {
    for (Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv, &l.bo,
                      &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) {
      TESSERA_ASSIGN_OR_RETURN(*t, resident(*t));
    }
  }
  if (backend_->is_device()) converted_.clear();  // the device copies are what the forward reads
  return {};
}

Status LlamaModel::head(const Tensor& xn, Tensor logits, bool in_backend) {
  if (!backend_->is_device() || in_backend) return backend_->matmul(xn, output_, logits);
  const int64_t n = xn.dim(0);
  if (ws_.logits.view.empty() || ws_.logits.view.dim(0) < n) {
    TESSERA_ASSIGN_OR_RETURN(ws_.logits, backend_->allocate(DType::kF32, {n, config_.vocab_size}));
  }
  Tensor dev = ws_.logits.view.slice_rows(0, n);
  TESSERA_RETURN_IF_ERROR(backend_->matmul(xn, output_, dev));
  return backend_->download(dev, logits);
}

Status LlamaModel::allocate(const LlamaOptions& options) {
  int64_t ctx =
      options.max_context > 0
          ? options.max_context
          : std::min<int64_t>(
                config_.max_position_embeddings > 0 ? config_.max_position_embeddings : 4096, 4096);
  max_context_ = static_cast<int32_t>(ctx);
  max_chunk_ = std::min(options.max_chunk, max_context_);
  for (Layer& l : layers_) {
    TESSERA_ASSIGN_OR_RETURN(l.k_cache,
                             backend_->allocate(options.kv_dtype, {ctx, num_kv_heads_, head_dim_}));
    TESSERA_ASSIGN_OR_RETURN(l.v_cache,
                             backend_->allocate(options.kv_dtype, {ctx, num_kv_heads_, head_dim_}));
  }
  return allocate_workspace(max_chunk_);
}

Status LlamaModel::allocate_workspace(int64_t c) {
  const int64_t qd = num_heads_ * head_dim_, kvd = num_kv_heads_ * head_dim_;
  // Row counts of each [C, n] f32 region, in carve order; each region starts 64-byte aligned.
  const int64_t widths[] = {hidden_, hidden_, hidden_, qd, qd, kvd, kvd, ffn_, ffn_};
  auto padded = [](int64_t bytes) { return (bytes + 63) / 64 * 64; };
  int64_t total = 0;
  for (int64_t n : widths) total += padded(c * n * 4);
  TESSERA_ASSIGN_OR_RETURN(ws_.buffer, backend_->allocate(DType::kF32, {total / 4}));
  char* p = static_cast<char*>(ws_.buffer.view.data());
  Tensor* slots[] = {&ws_.x, &ws_.xn, &ws_.proj, &ws_.q, &ws_.attn,
                     &ws_.k, &ws_.v,  &ws_.gate, &ws_.up};
  for (int i = 0; i < 9; ++i) {
    *slots[i] = Tensor(p, DType::kF32, {c, widths[i]});
    p += padded(c * widths[i] * 4);
  }
  ws_.positions.assign(c, 0);
  ws_.rows = c;
  return {};
}

void LlamaModel::truncate(int32_t num_tokens) {
  TESSERA_CHECK(num_tokens >= 0 && num_tokens <= num_cached_, "truncate to {} of {} cached",
                num_tokens, num_cached_);
  num_cached_ = num_tokens;
}

Status LlamaModel::forward(std::span<const int32_t> tokens, int32_t start_pos, bool all_logits,
                           Tensor logits) {
  TESSERA_RETURN_IF_ERROR(check_forward_args(tokens, start_pos, num_cached_, max_context_,
                                             all_logits, logits, config_.vocab_size));
  const int64_t n = static_cast<int64_t>(tokens.size());
  num_cached_ = start_pos;
  for (int64_t begin = 0; begin < n; begin += max_chunk_) {
    const int64_t end = std::min(n, begin + max_chunk_);
    const bool last = end == n;
    Tensor out = all_logits ? logits.slice_rows(begin, end) : logits;
    Status s =
        forward_chunk(tokens.subspan(begin, end - begin), start_pos + static_cast<int32_t>(begin),
                      all_logits || last, all_logits, out);
    if (!s.ok()) {
      num_cached_ = start_pos;
      return s;
    }
  }
  num_cached_ = start_pos + static_cast<int32_t>(n);
  return {};
}

Status LlamaModel::add_bias(Tensor x, const Tensor& bias) {
  if (bias.empty()) return {};
  for (int64_t t = 0; t < x.dim(0); ++t) {
    TESSERA_RETURN_IF_ERROR(backend_->add(x.row(t), bias, x.row(t)));
  }
  return {};
}

Status LlamaModel::project_qkv(Layer& l, std::span<const int32_t> pos, int64_t t) {
  backend::Backend& be = *backend_;
  Tensor xn = ws_.xn.slice_rows(0, t);
  Tensor q = ws_.q.slice_rows(0, t), k = ws_.k.slice_rows(0, t), v = ws_.v.slice_rows(0, t);
  TESSERA_RETURN_IF_ERROR(be.rms_norm(ws_.x.slice_rows(0, t), l.attn_norm, eps_, xn));
  TESSERA_RETURN_IF_ERROR(be.matmul(xn, l.wq, q));
  TESSERA_RETURN_IF_ERROR(be.matmul(xn, l.wk, k));
  TESSERA_RETURN_IF_ERROR(be.matmul(xn, l.wv, v));
  TESSERA_RETURN_IF_ERROR(add_bias(q, l.bq));
  TESSERA_RETURN_IF_ERROR(add_bias(k, l.bk));
  TESSERA_RETURN_IF_ERROR(add_bias(v, l.bv));
  TESSERA_RETURN_IF_ERROR(be.rope(q.reshape({t, num_heads_, head_dim_}), pos, rope_));
  return be.rope(k.reshape({t, num_kv_heads_, head_dim_}), pos, rope_);
}

Status LlamaModel::attention_block(Layer& l, int32_t start_pos, int64_t t) {
  backend::Backend& be = *backend_;
  std::span<const int32_t> pos(ws_.positions.data(), t);
  TESSERA_RETURN_IF_ERROR(project_qkv(l, pos, t));
  Tensor q3 = ws_.q.slice_rows(0, t).reshape({t, num_heads_, head_dim_});
  Tensor k3 = ws_.k.slice_rows(0, t).reshape({t, num_kv_heads_, head_dim_});
  Tensor v = ws_.v.slice_rows(0, t);
  const int64_t end = start_pos + t;
  TESSERA_RETURN_IF_ERROR(be.convert(k3, l.k_cache.view.slice_rows(start_pos, end)));
  TESSERA_RETURN_IF_ERROR(be.convert(v.reshape({t, num_kv_heads_, head_dim_}),
                                     l.v_cache.view.slice_rows(start_pos, end)));
  Tensor attn = ws_.attn.slice_rows(0, t);
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  TESSERA_RETURN_IF_ERROR(be.attention(q3, l.k_cache.view.slice_rows(0, end),
                                       l.v_cache.view.slice_rows(0, end), pos, scale,
                                       attn.reshape({t, num_heads_, head_dim_})));
  return output_projection(l, t);
}

// x += attn @ Wo^T (+ bo): the attention sub-layer's output and residual, shared by the
// contiguous and paged paths.  attn, x: [t, hidden]
Status LlamaModel::output_projection(Layer& l, int64_t t) {
  backend::Backend& be = *backend_;
  Tensor proj = ws_.proj.slice_rows(0, t);
  TESSERA_RETURN_IF_ERROR(be.matmul(ws_.attn.slice_rows(0, t), l.wo, proj));
  TESSERA_RETURN_IF_ERROR(add_bias(proj, l.bo));
  Tensor x = ws_.x.slice_rows(0, t);
  return be.add(x, proj, x);
}

Status LlamaModel::mlp_block(Layer& l, int64_t t) {
  backend::Backend& be = *backend_;
  Tensor x = ws_.x.slice_rows(0, t), xn = ws_.xn.slice_rows(0, t);
  Tensor gate = ws_.gate.slice_rows(0, t), up = ws_.up.slice_rows(0, t);
  Tensor proj = ws_.proj.slice_rows(0, t);
  TESSERA_RETURN_IF_ERROR(be.rms_norm(x, l.ffn_norm, eps_, xn));
  TESSERA_RETURN_IF_ERROR(be.matmul(xn, l.w_gate, gate));
  TESSERA_RETURN_IF_ERROR(be.matmul(xn, l.w_up, up));
  TESSERA_RETURN_IF_ERROR(be.silu_mul(gate, up, gate));
  TESSERA_RETURN_IF_ERROR(be.matmul(gate, l.w_down, proj));
  return be.add(x, proj, x);
}

Status LlamaModel::forward_chunk(std::span<const int32_t> tokens, int32_t start_pos,
                                 bool want_logits, bool all_logits, Tensor logits) {
  const int64_t t = static_cast<int64_t>(tokens.size());
  for (int64_t i = 0; i < t; ++i) ws_.positions[i] = start_pos + static_cast<int32_t>(i);
  TESSERA_RETURN_IF_ERROR(backend_->embedding(token_embd_, tokens, ws_.x.slice_rows(0, t)));
  for (Layer& l : layers_) {
    TESSERA_RETURN_IF_ERROR(attention_block(l, start_pos, t));
    TESSERA_RETURN_IF_ERROR(mlp_block(l, t));
  }
  if (!want_logits) return {};
  // Only the rows whose logits are wanted go through the final norm and the head.
  const int64_t first = all_logits ? 0 : t - 1;
  Tensor x = ws_.x.slice_rows(first, t), xn = ws_.xn.slice_rows(first, t);
  TESSERA_RETURN_IF_ERROR(backend_->rms_norm(x, output_norm_, eps_, xn));
  return head(xn, logits);
}

}  // namespace tessera::model

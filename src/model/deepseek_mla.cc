// Multi-head latent attention (DeepSeek V2/V3) for DeepseekModel::forward_batch.
// Per token the cache keeps c = [kv_a_layernorm(latent) (r) | rope(k_pe) (rope)], Hkv = 1.
// Absorbed path: q_abs_h = [q_nope_h W_UK_h | rope(q_pe_h)], paged attention over the latent
// rows (V = the first r values of each row), then o_h = out_h W_UV_h^T; the per-head products
// are one matmul_batched each where the backend supports it. Expanded path (fresh
// prefills only): K/V per head from c @ kv_b_proj^T and plain causal attention.
// Invariant: both paths see the same roped q/k and the same softmax scale, so they agree.
#include <algorithm>

#include "tessera/model/deepseek.h"

namespace tessera::model {
namespace {

// A view of f32 memory `offset` floats past `base`'s data: shape `shape`, element strides.
Tensor view2(const Tensor& base, int64_t offset, int64_t d0, int64_t d1, int64_t s0) {
  return Tensor(base.data_as<float>() + offset, DType::kF32, {d0, d1}).with_strides({s0 * 4, 4});
}
Tensor view3(const Tensor& base, int64_t offset, int64_t d0, int64_t d1, int64_t d2, int64_t s0,
             int64_t s1) {
  return Tensor(base.data_as<float>() + offset, DType::kF32, {d0, d1, d2})
      .with_strides({s0 * 4, s1 * 4, 4});
}

}  // namespace

Status DeepseekModel::mla_block(Layer& l, const ForwardBatch& b, Tensor k_cache, Tensor v_cache) {
  backend::Backend& be = *backend_;
  Mla& m = l.mla;
  const int64_t t = b.num_tokens(), lat = kv_lora_ + rope_dim_;
  Tensor xn = ws_.xn.slice_rows(0, t);
  Tensor q = ws_.q.slice_rows(0, t);  // [t, H * qk]
  if (q_lora_ > 0) {
    Tensor qa = ws_.qa.slice_rows(0, t);
    TESSERA_RETURN_IF_ERROR(linear(xn, m.q_a_proj, qa));
    // NOTE: transformers builds q_a_layernorm / kv_a_layernorm with the default eps 1e-6,
    // not config.rms_norm_eps.
    TESSERA_RETURN_IF_ERROR(be.rms_norm(qa, m.q_a_norm, 1e-6f, qa));
    TESSERA_RETURN_IF_ERROR(linear(qa, m.q_b_proj, q));
  } else {
    TESSERA_RETURN_IF_ERROR(linear(xn, m.q_proj, q));
  }
  Tensor q_pe = view3(ws_.q, nope_, t, heads_, rope_dim_, heads_ * qk_dim_, qk_dim_);
  TESSERA_RETURN_IF_ERROR(be.rope(q_pe, b.positions_operand(), rope_));

  Tensor c = ws_.latent.slice_rows(0, t);  // [t, r + rope]
  TESSERA_RETURN_IF_ERROR(linear(xn, m.kv_a_proj, c));
  Tensor c_kv = view2(ws_.latent, 0, t, kv_lora_, lat);
  TESSERA_RETURN_IF_ERROR(be.rms_norm(c_kv, m.kv_a_norm, 1e-6f, c_kv));
  TESSERA_RETURN_IF_ERROR(be.rope(view3(ws_.latent, kv_lora_, t, 1, rope_dim_, lat, lat),
                                  b.positions_operand(), rope_));
  TESSERA_RETURN_IF_ERROR(be.kv_append(c.reshape({t, 1, lat}),
                                       view3(ws_.latent, 0, t, 1, kv_lora_, lat, lat),
                                       b.slot_mapping_operand(), k_cache, v_cache));

  // Expanded only when every sequence is a fresh prefill (its whole context is in this step).
  bool fresh = b.num_tokens() > b.num_seqs();
  for (int32_t s = 0; s < b.num_seqs(); ++s) {
    fresh = fresh && b.seq_lens[s] == b.query_start[s + 1] - b.query_start[s];
  }
  last_expanded_ = fresh && options_.mla_path != DeepseekOptions::MlaPath::kAbsorbed;
  if (last_expanded_) {
    TESSERA_RETURN_IF_ERROR(mla_expanded(l, b));
  } else {
    TESSERA_RETURN_IF_ERROR(mla_absorbed(l, b, k_cache, v_cache));
  }
  Tensor proj = ws_.proj.slice_rows(0, t), x = ws_.x.slice_rows(0, t);
  TESSERA_RETURN_IF_ERROR(linear(ws_.attn.slice_rows(0, t), m.o_proj, proj));
  return be.add(x, proj, x);
}

Status DeepseekModel::mla_absorbed(Layer& l, const ForwardBatch& b, Tensor k_cache,
                                   Tensor v_cache) {
  backend::Backend& be = *backend_;
  Mla& m = l.mla;
  const int64_t t = b.num_tokens(), lat = kv_lora_ + rope_dim_;
  const int64_t q_row = heads_ * qk_dim_, abs_row = heads_ * lat;
  // NOTE: the per-head products ([t, nope] x [r, nope]^T, then [t, r] x [v, r]^T) run as one
  // matmul_batched over the heads where the backend has it (H = 128 on V3: 256 calls a layer
  // otherwise); the per-head loop stays for backends without it.
  const bool batched = be.supports(backend::Op::kMatmulBatched, m.w_uk_t.dtype(), DType::kF32) &&
                       be.supports(backend::Op::kMatmulBatched, m.w_uv.dtype(), DType::kF32);
  if (batched) {
    // q_nope [H, t, nope] -> q_abs[:, :, :r] [H, t, r]
    TESSERA_RETURN_IF_ERROR(
        be.matmul_batched(view3(ws_.q, 0, heads_, t, nope_, qk_dim_, q_row), m.w_uk_t,
                          view3(ws_.q_abs, 0, heads_, t, kv_lora_, lat, abs_row)));
  } else {
    for (int64_t h = 0; h < heads_; ++h) {
      Tensor q_nope = view2(ws_.q, h * qk_dim_, t, nope_, q_row);
      Tensor w_uk_t = m.w_uk_t.row(h);  // [r, nope]
      TESSERA_RETURN_IF_ERROR(
          be.matmul(q_nope, w_uk_t, view2(ws_.q_abs, h * lat, t, kv_lora_, abs_row)));
    }
  }
  TESSERA_RETURN_IF_ERROR(
      be.convert(view3(ws_.q, nope_, t, heads_, rope_dim_, q_row, qk_dim_),
                 view3(ws_.q_abs, kv_lora_, t, heads_, rope_dim_, abs_row, lat)));
  Tensor out = ws_.attn_latent.slice_rows(0, t).reshape({t, heads_, kv_lora_});
  TESSERA_RETURN_IF_ERROR(be.paged_attention(
      ws_.q_abs.slice_rows(0, t).reshape({t, heads_, lat}), k_cache, v_cache,
      b.query_start_operand(), b.seq_lens_operand(), b.block_tables_operand(), scale_, out));
  if (batched) {
    // attn_latent [H, t, r] -> attn [H, t, v]
    return be.matmul_batched(
        view3(ws_.attn_latent, 0, heads_, t, kv_lora_, kv_lora_, heads_ * kv_lora_), m.w_uv,
        view3(ws_.attn, 0, heads_, t, v_dim_, v_dim_, heads_ * v_dim_));
  }
  for (int64_t h = 0; h < heads_; ++h) {
    Tensor o_lat = view2(ws_.attn_latent, h * kv_lora_, t, kv_lora_, heads_ * kv_lora_);
    TESSERA_RETURN_IF_ERROR(
        be.matmul(o_lat, m.w_uv.row(h), view2(ws_.attn, h * v_dim_, t, v_dim_, heads_ * v_dim_)));
  }
  return {};
}

Status DeepseekModel::mla_expanded(Layer& l, const ForwardBatch& b) {
  backend::Backend& be = *backend_;
  Mla& m = l.mla;
  const int64_t t = b.num_tokens(), lat = kv_lora_ + rope_dim_, kv_row = heads_ * (nope_ + v_dim_);
  const int64_t q_row = heads_ * qk_dim_;
  // [t, H * (nope + v)] = c_kv @ kv_b_proj^T; K = [k_nope_h | k_pe] per head, V = v_h.
  TESSERA_RETURN_IF_ERROR(
      linear(view2(ws_.latent, 0, t, kv_lora_, lat), m.kv_b_proj, ws_.kvb.slice_rows(0, t)));
  TESSERA_RETURN_IF_ERROR(be.convert(view3(ws_.kvb, 0, t, heads_, nope_, kv_row, nope_ + v_dim_),
                                     view3(ws_.k_exp, 0, t, heads_, nope_, q_row, qk_dim_)));
  Tensor k_pe = view2(ws_.latent, kv_lora_, t, rope_dim_, lat);
  for (int64_t h = 0; h < heads_; ++h) {
    TESSERA_RETURN_IF_ERROR(
        be.convert(k_pe, view2(ws_.k_exp, h * qk_dim_ + nope_, t, rope_dim_, q_row)));
  }
  for (int32_t s = 0; s < b.num_seqs(); ++s) {
    const int64_t begin = b.query_start[s], end = b.query_start[s + 1], n = end - begin;
    if (n == 0) continue;
    Tensor q3 = view3(ws_.q, begin * q_row, n, heads_, qk_dim_, q_row, qk_dim_);
    Tensor k3 = view3(ws_.k_exp, begin * q_row, n, heads_, qk_dim_, q_row, qk_dim_);
    Tensor v3 = view3(ws_.kvb, begin * kv_row + nope_, n, heads_, v_dim_, kv_row, nope_ + v_dim_);
    Tensor o3 =
        view3(ws_.attn, begin * heads_ * v_dim_, n, heads_, v_dim_, heads_ * v_dim_, v_dim_);
    std::span<const int32_t> pos = b.positions_operand().subspan(begin, n);
    TESSERA_RETURN_IF_ERROR(be.attention(q3, k3, v3, pos, scale_, o3));
  }
  return {};
}

}  // namespace tessera::model

// LlamaModel::forward_batch: one packed multi-sequence step over a paged KV cache (see
// model.h and batch.h). Every layer runs its projections and MLP over all rows at once;
// only attention looks at sequence boundaries. Invariant: a step's K/V are appended to the
// cache before its attention reads them; only logits_indices rows reach the final norm.
#include <cmath>

#include "src/model/batch_rows.h"
#include "src/model/forward_checks.h"
#include "tessera/core/check.h"
#include "tessera/model/llama.h"

namespace tessera::model {

void LlamaModel::reserve_batch(int32_t max_num_tokens) {
  if (max_num_tokens <= ws_.rows) return;
  Status s = allocate_workspace(max_num_tokens);
  TESSERA_CHECK(s.ok(), "workspace for {} tokens: {}", max_num_tokens, s.message());
}

Status LlamaModel::validate_batch(const ForwardBatch& b, const PagedKvCache& cache,
                                  const Tensor& logits) const {
  TESSERA_RETURN_IF_ERROR(check_forward_batch(b, cache, config_.vocab_size, max_context_, logits));
  return check_cache_geometry(cache, static_cast<int64_t>(layers_.size()), num_kv_heads_, head_dim_,
                              /*latent=*/false);
}

Status LlamaModel::paged_attention_block(Layer& l, const ForwardBatch& b, Tensor k_cache,
                                         Tensor v_cache) {
  backend::Backend& be = *backend_;
  const int64_t t = b.num_tokens();
  TESSERA_RETURN_IF_ERROR(project_qkv(l, b.positions_operand(), t));
  Tensor q3 = ws_.q.slice_rows(0, t).reshape({t, num_heads_, head_dim_});
  Tensor k3 = ws_.k.slice_rows(0, t).reshape({t, num_kv_heads_, head_dim_});
  Tensor v3 = ws_.v.slice_rows(0, t).reshape({t, num_kv_heads_, head_dim_});
  TESSERA_RETURN_IF_ERROR(be.kv_append(k3, v3, b.slot_mapping_operand(), k_cache, v_cache));
  Tensor attn = ws_.attn.slice_rows(0, t);
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  TESSERA_RETURN_IF_ERROR(be.paged_attention(q3, k_cache, v_cache, b.query_start_operand(),
                                             b.seq_lens_operand(), b.block_tables_operand(), scale,
                                             attn.reshape({t, num_heads_, head_dim_})));
  return output_projection(l, t);
}

Status LlamaModel::forward_batch(const ForwardBatch& b, PagedKvCache& cache, Tensor logits) {
  TESSERA_RETURN_IF_ERROR(validate_batch(b, cache, logits));
  const int64_t t = b.num_tokens();
  if (t > ws_.rows) TESSERA_RETURN_IF_ERROR(allocate_workspace(t));  // past every earlier size
  TESSERA_RETURN_IF_ERROR(
      backend_->embedding(token_embd_, b.tokens_operand(), ws_.x.slice_rows(0, t)));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int layer = static_cast<int>(i);
    TESSERA_RETURN_IF_ERROR(paged_attention_block(layers_[i], b, cache.k(layer), cache.v(layer)));
    TESSERA_RETURN_IF_ERROR(mlp_block(layers_[i], t));
  }
  const int64_t n = b.num_logits();
  if (n == 0) return {};
  // Gather the rows that need logits (any order, repeats allowed), then norm and head.
  Tensor rows = ws_.proj.slice_rows(0, n), xn = ws_.xn.slice_rows(0, n);
  TESSERA_RETURN_IF_ERROR(
      gather_rows(*backend_, ws_.x.slice_rows(0, b.num_tokens()), b.logits_indices, rows));
  TESSERA_RETURN_IF_ERROR(backend_->rms_norm(rows, output_norm_, eps_, xn));
  return head(xn, logits, b.logits_in_backend);
}

}  // namespace tessera::model

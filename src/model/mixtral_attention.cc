// Grouped-query attention for DeepseekModel's Mixtral layers over the paged KV cache: q/k/v
// projections, neox rope, kv_append, paged_attention, o_proj and the residual add.
// Invariant: a step's K/V rows are in the cache before attention reads them.
#include <cmath>

#include "tessera/model/deepseek.h"

namespace tessera::model {

Status DeepseekModel::gqa_block(Layer& l, const ForwardBatch& b, Tensor k_cache, Tensor v_cache) {
  backend::Backend& be = *backend_;
  Gqa& g = l.gqa;
  const int64_t t = b.num_tokens();
  Tensor xn = ws_.xn.slice_rows(0, t);
  Tensor q = ws_.q.slice_rows(0, t), k = ws_.latent.slice_rows(0, t), v = ws_.vv.slice_rows(0, t);
  TESSERA_RETURN_IF_ERROR(linear(xn, g.q, q));
  TESSERA_RETURN_IF_ERROR(linear(xn, g.k, k));
  TESSERA_RETURN_IF_ERROR(linear(xn, g.v, v));
  Tensor q3 = q.reshape({t, heads_, head_dim_});
  Tensor k3 = k.reshape({t, kv_heads_, head_dim_});
  TESSERA_RETURN_IF_ERROR(be.rope(q3, b.positions_operand(), rope_));
  TESSERA_RETURN_IF_ERROR(be.rope(k3, b.positions_operand(), rope_));
  TESSERA_RETURN_IF_ERROR(be.kv_append(k3, v.reshape({t, kv_heads_, head_dim_}),
                                       b.slot_mapping_operand(), k_cache, v_cache));
  Tensor attn = ws_.attn.slice_rows(0, t);
  TESSERA_RETURN_IF_ERROR(be.paged_attention(q3, k_cache, v_cache, b.query_start_operand(),
                                             b.seq_lens_operand(), b.block_tables_operand(), scale_,
                                             attn.reshape({t, heads_, head_dim_})));
  Tensor proj = ws_.proj.slice_rows(0, t), x = ws_.x.slice_rows(0, t);
  TESSERA_RETURN_IF_ERROR(linear(attn, g.o, proj));
  return be.add(x, proj, x);
}

}  // namespace tessera::model

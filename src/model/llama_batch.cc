// LlamaModel::forward_batch: one packed multi-sequence step over a paged KV cache (see
// model.h and batch.h). Every layer runs its projections and MLP over all rows at once;
// only attention looks at sequence boundaries. Invariant: a step's K/V are appended to the
// cache before its attention reads them; only logits_indices rows reach the final norm.
#include <cmath>

#include "tessera/model/llama.h"

namespace tessera::model {

void LlamaModel::reserve_batch(int32_t max_num_tokens) {
  if (max_num_tokens > ws_.rows) allocate_workspace(max_num_tokens);
}

Status LlamaModel::validate_batch(const ForwardBatch& b, const PagedKvCache& cache,
                                  const Tensor& logits) const {
  const int32_t t = b.num_tokens(), s = b.num_seqs();
  if (t <= 0 || s <= 0) return invalid_argument("forward_batch needs at least one token");
  if (static_cast<int32_t>(b.positions.size()) != t ||
      static_cast<int32_t>(b.slot_mapping.size()) != t ||
      static_cast<int32_t>(b.query_start.size()) != s + 1 || b.max_blocks_per_seq <= 0 ||
      static_cast<int64_t>(b.block_tables.size()) != int64_t{s} * b.max_blocks_per_seq) {
    return invalid_argument(
        "forward_batch: inconsistent batch ({} tokens, {} positions, {} slots, {} query_start, "
        "{} seqs, block_tables {} for {} per seq)",
        t, b.positions.size(), b.slot_mapping.size(), b.query_start.size(), s,
        b.block_tables.size(), b.max_blocks_per_seq);
  }
  if (cache.num_layers() != static_cast<int32_t>(layers_.size()) ||
      cache.num_kv_heads() != num_kv_heads_ || cache.head_dim() != head_dim_) {
    return invalid_argument(
        "forward_batch: the paged cache ({} layers, {} kv heads, head_dim {}) does not fit the "
        "model ({}, {}, {})",
        cache.num_layers(), cache.num_kv_heads(), cache.head_dim(), layers_.size(), num_kv_heads_,
        head_dim_);
  }
  if (logits.dtype() != DType::kF32 || logits.ndim() != 2 || logits.dim(0) != b.num_logits() ||
      logits.dim(1) != config_.vocab_size) {
    return invalid_argument("forward_batch: logits must be f32 [{}, {}], got {}", b.num_logits(),
                            config_.vocab_size, logits.describe());
  }
  for (int32_t id : b.tokens) {
    if (id < 0 || id >= config_.vocab_size) {
      return invalid_argument("token id {} is outside the vocabulary [0, {})", id,
                              config_.vocab_size);
    }
  }
  for (int32_t row : b.logits_indices) {
    if (row < 0 || row >= t) {
      return invalid_argument("logits index {} is outside the {} batch rows", row, t);
    }
  }
  if (b.query_start[0] != 0 || b.query_start[s] != t) {
    return invalid_argument("query_start must run from 0 to {}, got {} .. {}", t, b.query_start[0],
                            b.query_start[s]);
  }
  const int64_t capacity = int64_t{b.max_blocks_per_seq} * cache.block_size();
  for (int32_t i = 0; i < s; ++i) {
    const int32_t begin = b.query_start[i], end = b.query_start[i + 1];
    if (end < begin || end - begin > b.seq_lens[i] || b.seq_lens[i] > capacity ||
        b.seq_lens[i] > max_context_) {
      return invalid_argument(
          "sequence {}: rows {} .. {} do not fit its length {} (table capacity {}, context {})", i,
          begin, end, b.seq_lens[i], capacity, max_context_);
    }
    for (int32_t r = begin; r < end; ++r) {
      if (b.positions[r] != b.seq_lens[i] - (end - begin) + (r - begin)) {
        return invalid_argument("sequence {}: row {} has position {}, expected {}", i, r,
                                b.positions[r], b.seq_lens[i] - (end - begin) + (r - begin));
      }
    }
  }
  return {};
}

Status LlamaModel::paged_attention_block(Layer& l, const ForwardBatch& b, Tensor k_cache,
                                         Tensor v_cache) {
  backend::Backend& be = *backend_;
  const int64_t t = b.num_tokens();
  TESSERA_RETURN_IF_ERROR(project_qkv(l, b.positions, t));
  Tensor q3 = ws_.q.slice_rows(0, t).reshape({t, num_heads_, head_dim_});
  Tensor k3 = ws_.k.slice_rows(0, t).reshape({t, num_kv_heads_, head_dim_});
  Tensor v3 = ws_.v.slice_rows(0, t).reshape({t, num_kv_heads_, head_dim_});
  TESSERA_RETURN_IF_ERROR(be.kv_append(k3, v3, b.slot_mapping, k_cache, v_cache));
  Tensor attn = ws_.attn.slice_rows(0, t);
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  TESSERA_RETURN_IF_ERROR(be.paged_attention(q3, k_cache, v_cache, b.query_start, b.seq_lens,
                                             b.block_tables_view(), scale,
                                             attn.reshape({t, num_heads_, head_dim_})));
  return output_projection(l, t);
}

Status LlamaModel::forward_batch(const ForwardBatch& b, PagedKvCache& cache, Tensor logits) {
  TESSERA_RETURN_IF_ERROR(validate_batch(b, cache, logits));
  const int64_t t = b.num_tokens();
  reserve_batch(static_cast<int32_t>(t));  // NOTE: allocates only past every earlier size
  TESSERA_RETURN_IF_ERROR(backend_->embedding(token_embd_, b.tokens, ws_.x.slice_rows(0, t)));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int layer = static_cast<int>(i);
    TESSERA_RETURN_IF_ERROR(paged_attention_block(layers_[i], b, cache.k(layer), cache.v(layer)));
    TESSERA_RETURN_IF_ERROR(mlp_block(layers_[i], t));
  }
  const int64_t n = b.num_logits();
  if (n == 0) return {};
  // Gather the rows that need logits (any order, repeats allowed), then norm and head.
  Tensor rows = ws_.proj.slice_rows(0, n), xn = ws_.xn.slice_rows(0, n);
  for (int64_t i = 0; i < n; ++i) {
    TESSERA_RETURN_IF_ERROR(backend_->convert(ws_.x.row(b.logits_indices[i]), rows.row(i)));
  }
  TESSERA_RETURN_IF_ERROR(backend_->rms_norm(rows, output_norm_, eps_, xn));
  return backend_->matmul(xn, output_, logits);
}

}  // namespace tessera::model

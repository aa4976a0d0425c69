// Shared forward-pass argument checks (see forward_checks.h).
#include "src/model/forward_checks.h"

namespace tessera::model {
namespace {

Status check_token_ids(std::span<const int32_t> tokens, int64_t vocab_size) {
  for (int32_t t : tokens) {
    if (t < 0 || t >= vocab_size) {
      return invalid_argument("token id {} is outside the vocabulary [0, {})", t, vocab_size);
    }
  }
  return {};
}

}  // namespace

Status check_forward_args(std::span<const int32_t> tokens, int32_t start_pos, int32_t num_cached,
                          int32_t max_context, bool all_logits, const Tensor& logits,
                          int64_t vocab_size) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return invalid_argument("forward needs at least one token");
  if (start_pos < 0 || start_pos > num_cached) {
    return invalid_argument("start_pos {} is past the {} cached tokens", start_pos, num_cached);
  }
  if (start_pos + n > max_context) {
    return make_error(StatusCode::kOutOfRange,
                      "{} tokens from position {} exceed the context of {} tokens (raise "
                      "max_context)",
                      n, start_pos, max_context);
  }
  const int64_t rows = all_logits ? n : 1;
  if (logits.dtype() != DType::kF32 || logits.ndim() != 2 || logits.dim(0) != rows ||
      logits.dim(1) != vocab_size) {
    return invalid_argument("logits must be f32 [{}, {}], got {}", rows, vocab_size,
                            logits.describe());
  }
  return check_token_ids(tokens, vocab_size);
}

Status check_forward_batch(const ForwardBatch& b, const PagedKvCache& cache, int64_t vocab_size,
                           int32_t max_context, const Tensor& logits) {
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
  if (logits.dtype() != DType::kF32 || logits.ndim() != 2 || logits.dim(0) != b.num_logits() ||
      logits.dim(1) != vocab_size) {
    return invalid_argument("forward_batch: logits must be f32 [{}, {}], got {}", b.num_logits(),
                            vocab_size, logits.describe());
  }
  TESSERA_RETURN_IF_ERROR(check_token_ids(b.tokens, vocab_size));
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
        b.seq_lens[i] > max_context) {
      return invalid_argument(
          "sequence {}: rows {} .. {} do not fit its length {} (table capacity {}, context {})", i,
          begin, end, b.seq_lens[i], capacity, max_context);
    }
    for (int32_t r = begin; r < end; ++r) {
      const int32_t want = b.seq_lens[i] - (end - begin) + (r - begin);
      if (b.positions[r] != want) {
        return invalid_argument("sequence {}: row {} has position {}, expected {}", i, r,
                                b.positions[r], want);
      }
    }
  }
  return {};
}

Status check_cache_geometry(const PagedKvCache& cache, int64_t num_layers, int64_t kv_heads,
                            int64_t head_dim, bool latent) {
  if (cache.num_layers() != num_layers || cache.num_kv_heads() != kv_heads ||
      cache.head_dim() != head_dim || cache.is_latent() != latent) {
    return invalid_argument(
        "forward_batch: the paged cache ({} layers, {} kv heads, head_dim {}{}) does not fit the "
        "model ({}, {}, {}{})",
        cache.num_layers(), cache.num_kv_heads(), cache.head_dim(),
        cache.is_latent() ? ", latent" : "", num_layers, kv_heads, head_dim,
        latent ? ", latent" : "");
  }
  return {};
}

}  // namespace tessera::model

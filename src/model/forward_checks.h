// Argument checks every architecture's forward passes share, so a malformed batch or logits
// buffer gets the same clear error from any model before a kernel sees it.
// Invariant: these read only shapes and ids; they never touch weights or the cache's data.
#pragma once

#include <cstdint>
#include <span>

#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/model/batch.h"
#include "tessera/model/paged_kv_cache.h"

namespace tessera::model {

// Model::forward: tokens at start_pos .. start_pos + T - 1 over a cache holding num_cached
// tokens of max_context; logits f32 [T or 1, vocab_size] as all_logits says.
Status check_forward_args(std::span<const int32_t> tokens, int32_t start_pos, int32_t num_cached,
                          int32_t max_context, bool all_logits, const Tensor& logits,
                          int64_t vocab_size);

// Model::forward_batch: the packed batch is self-consistent (sizes, query_start, positions,
// logits rows, token ids), fits the block tables and max_context, and logits is
// f32 [num_logits, vocab_size].
Status check_forward_batch(const ForwardBatch& b, const PagedKvCache& cache, int64_t vocab_size,
                           int32_t max_context, const Tensor& logits);

// The paged cache has the geometry the model writes: num_layers of [.., kv_heads, head_dim]
// K rows, latent (MLA: V is a view of K) or not.
Status check_cache_geometry(const PagedKvCache& cache, int64_t num_layers, int64_t kv_heads,
                            int64_t head_dim, bool latent);

}  // namespace tessera::model

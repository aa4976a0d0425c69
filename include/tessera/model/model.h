// Model: one causal language model over one sequence with its own KV cache. The caller feeds
// token chunks in order; the model keeps every fed token's K/V until reset() or truncate().
// Invariant: forward() allocates nothing; after a successful forward num_cached_tokens() ==
// start_pos + tokens.size(), and a failed forward leaves the cache at start_pos.
#pragma once

#include <cstdint>
#include <span>

#include "tessera/backend/backend.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/model/batch.h"
#include "tessera/model/model_config.h"
#include "tessera/model/paged_kv_cache.h"

namespace tessera::model {

class Model {
 public:
  virtual ~Model() = default;

  // Runs `tokens` at positions start_pos .. start_pos + T - 1 (start_pos <= num_cached_tokens();
  // a smaller start_pos first truncates the cache there). Prompts longer than the workspace
  // chunk are processed in chunks.
  //   logits  f32 [T, vocab] if all_logits, else f32 [1, vocab] (the last token's row).
  virtual Status forward(std::span<const int32_t> tokens, int32_t start_pos, bool all_logits,
                         Tensor logits) = 0;

  // Runs one packed multi-sequence step over a paged KV cache (DESIGN.md "One step's batch"),
  // independent of the single-sequence cache above: writes each new token's K/V at its
  // slot_mapping slot, then attends over the blocks its sequence's block table names.
  //   logits  f32 [batch.num_logits(), vocab]: row i is token row batch.logits_indices[i]; host
  //           memory, or the backend's when batch.logits_in_backend (written in place).
  // Grows the model's workspace on first use past its size (see reserve_batch), else
  // allocates nothing. Architectures without a paged path return kUnimplemented.
  virtual Status forward_batch(const ForwardBatch& batch, PagedKvCache& cache, Tensor logits) {
    return unimplemented("this model has no paged (batched) forward pass");
  }
  // Sizes the workspace for batches of up to `max_num_tokens` tokens now, so that
  // forward_batch never allocates afterwards.
  virtual void reserve_batch(int32_t max_num_tokens) {}

  virtual void reset() = 0;                       // forget every cached token
  virtual void truncate(int32_t num_tokens) = 0;  // keep the first num_tokens (<= cached)
  virtual int32_t num_cached_tokens() const = 0;
  virtual int32_t max_context() const = 0;  // KV cache capacity in tokens
  virtual const ModelConfig& config() const = 0;
  // The backend whose memory holds the model's weights and workspace (KV caches for
  // forward_batch are created on it too).
  virtual backend::Backend* backend() const = 0;
  int64_t vocab_size() const { return config().vocab_size; }
};

}  // namespace tessera::model

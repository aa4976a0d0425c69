// Decode-step graphs (docs/cuda.md "CUDA graphs"): which packed steps a captured graph can run,
// how such a step is padded to its bucket, and how a step's metadata is laid out in backend
// memory so that ops read it at fixed addresses. Pure host logic: no backend calls here.
// Invariant: a padded step computes the same rows 0..n-1 as the unpadded one; padding rows write
// no K/V and read only a key their row-0 sibling has written by the time attention runs.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <vector>

#include "tessera/core/tensor.h"
#include "tessera/model/batch.h"

namespace tessera::runtime {

// One captured graph's shape: `batch` rows (= sequences, one new token each) and block tables
// wide enough for `context` tokens per sequence (a multiple of the block size).
struct GraphBucket {
  int32_t batch = 0;
  int32_t context = 0;
  auto operator<=>(const GraphBucket&) const = default;
};

struct StepGraphLimits {
  int32_t max_batch = 0;      // largest bucket batch; <= 0: no graphs
  int32_t max_context = 0;    // longest sequence a bucket must hold, in tokens
  int32_t block_size = 16;    // the KV cache's
  int32_t min_context = 512;  // smallest context bucket (rounded up to the block size)
};

// The batch buckets: 1, 2, 4, 8, then every multiple of 8, up to and including max_batch.
// NOTE: the multiples of 8 keep padding under 8 rows (under 50% below 16), and decode weight
// reads cost the same for 9 or 16 rows; each bucket is one capture per context bucket.
std::vector<int32_t> graph_batch_sizes(int32_t max_batch);

// The bucket of a pure-decode step with `num_seqs` rows whose longest sequence has
// `max_seq_len` tokens: the smallest batch bucket >= num_seqs and the smallest context bucket
// (min_context * 2^k, capped at max_context rounded up to the block size) >= max_seq_len.
// nullopt when none fits (too many rows, too long, or graphs are off).
std::optional<GraphBucket> choose_graph_bucket(const StepGraphLimits& limits, int32_t num_seqs,
                                               int32_t max_seq_len);

// Whether `b` is a pure-decode step: one new token per sequence and logits for every row, in
// row order (logits_indices = 0..num_seqs-1).
bool is_pure_decode(const model::ForwardBatch& b);

// `decode` (pure decode, n rows) widened to `bucket`: block-table rows widen to
// bucket.context / block_size entries (the unused ones 0), and rows n..bucket.batch-1 are
// padding: row 0's token at position 0, seq_len 1, slot -1 (no K/V write), block table
// [row 0's first block]. Logits for every row. Requires n <= bucket.batch and every
// seq_len <= bucket.context.
void pad_decode_batch(const model::ForwardBatch& decode, GraphBucket bucket, int32_t block_size,
                      model::ForwardBatch* padded);

// Where each field of a step's metadata sits in one i32 buffer (offsets in elements):
// tokens, positions, slot_mapping [num_tokens]; query_start [num_seqs + 1]; seq_lens
// [num_seqs]; block_tables [num_seqs, max_blocks] row-major.
struct MetadataLayout {
  int64_t tokens = 0, positions = 0, slot_mapping = 0, query_start = 0, seq_lens = 0,
          block_tables = 0, total = 0;
  int32_t num_tokens = 0, num_seqs = 0, max_blocks = 0;

  static MetadataLayout of(int32_t num_tokens, int32_t num_seqs, int32_t max_blocks);
  static MetadataLayout of(const model::ForwardBatch& b) {
    return of(b.num_tokens(), b.num_seqs(), b.max_blocks_per_seq);
  }
};

// Writes `b`'s metadata into packed[0 .. layout.total) (resized to fit) and returns the layout.
MetadataLayout pack_metadata(const model::ForwardBatch& b, std::vector<int32_t>* packed);

// Points b->in_backend at `buffer` (i32 [>= layout.total], backend memory; never read here).
void bind_backend_operands(const Tensor& buffer, const MetadataLayout& layout,
                           model::ForwardBatch* b);

}  // namespace tessera::runtime

// ForwardBatch: one step's packed batch (DESIGN.md "One step's batch"): the new tokens of
// several sequences, prefill chunks and decodes mixed, no padding. Plain data built by the
// runtime and read by Model::forward_batch. Invariant: sequence s owns token rows
// query_start[s] .. query_start[s+1]-1, at positions seq_lens[s] - n_s .. seq_lens[s] - 1.
#pragma once

#include <cstdint>
#include <vector>

#include "tessera/core/dtype.h"
#include "tessera/core/tensor.h"

namespace tessera::model {

struct ForwardBatch {
  std::vector<int32_t> tokens;          // [num_tokens] token ids of the new tokens
  std::vector<int32_t> positions;       // [num_tokens] position of each new token
  std::vector<int32_t> query_start;     // [num_seqs + 1] first row of each sequence; last = T
  std::vector<int32_t> seq_lens;        // [num_seqs] cached + new tokens of each sequence
  std::vector<int32_t> block_tables;    // [num_seqs, max_blocks_per_seq] row-major, physical ids
  int32_t max_blocks_per_seq = 0;       // row length of block_tables
  std::vector<int32_t> slot_mapping;    // [num_tokens] block * block_size + offset, or -1: skip
  std::vector<int32_t> logits_indices;  // [num_logits] rows whose logits are computed, in order
  // The logits tensor forward_batch writes is the backend's memory (not host memory): the head
  // writes it in place and nothing is downloaded (docs/engine.md "Device sampling").
  bool logits_in_backend = false;

  int32_t num_tokens() const { return static_cast<int32_t>(tokens.size()); }
  int32_t num_seqs() const { return static_cast<int32_t>(seq_lens.size()); }
  int32_t num_logits() const { return static_cast<int32_t>(logits_indices.size()); }

  // i32 [num_seqs, max_blocks_per_seq] view of block_tables (valid while the vector is).
  Tensor block_tables_view() const {
    return Tensor(const_cast<int32_t*>(block_tables.data()), DType::kI32,
                  {num_seqs(), max_blocks_per_seq});
  }

  void clear() {
    tokens.clear();
    positions.clear();
    query_start.clear();
    seq_lens.clear();
    block_tables.clear();
    max_blocks_per_seq = 0;
    slot_mapping.clear();
    logits_indices.clear();
    logits_in_backend = false;
  }
};

}  // namespace tessera::model

// ForwardBatch: one step's packed batch (DESIGN.md "One step's batch"): the new tokens of
// several sequences, prefill chunks and decodes mixed, no padding. Plain data built by the
// runtime and read by Model::forward_batch. Invariant: sequence s owns token rows
// query_start[s] .. query_start[s+1]-1, at positions seq_lens[s] - n_s .. seq_lens[s] - 1.
#pragma once

#include <cstdint>
#include <span>
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

  // The same metadata in backend memory (docs/cuda.md "CUDA graphs"), set by the runner for a
  // graph step: ops then read these views, whose addresses stay fixed from step to step, while
  // host code (checks, the logits row gather) keeps reading the host vectors above, which hold
  // the same values. Empty spans: ops read the host vectors.
  struct Operands {
    std::span<const int32_t> tokens;        // [num_tokens]
    std::span<const int32_t> positions;     // [num_tokens]
    std::span<const int32_t> query_start;   // [num_seqs + 1]
    std::span<const int32_t> seq_lens;      // [num_seqs]
    std::span<const int32_t> slot_mapping;  // [num_tokens]
    Tensor block_tables;                    // i32 [num_seqs, max_blocks_per_seq]
  };
  Operands in_backend;

  int32_t num_tokens() const { return static_cast<int32_t>(tokens.size()); }
  int32_t num_seqs() const { return static_cast<int32_t>(seq_lens.size()); }
  int32_t num_logits() const { return static_cast<int32_t>(logits_indices.size()); }

  bool has_backend_operands() const { return !in_backend.tokens.empty(); }

  // What ops get: the backend copies when present, else the host vectors.
  std::span<const int32_t> tokens_operand() const {
    return has_backend_operands() ? in_backend.tokens : std::span<const int32_t>(tokens);
  }
  std::span<const int32_t> positions_operand() const {
    return has_backend_operands() ? in_backend.positions : std::span<const int32_t>(positions);
  }
  std::span<const int32_t> query_start_operand() const {
    return has_backend_operands() ? in_backend.query_start : std::span<const int32_t>(query_start);
  }
  std::span<const int32_t> seq_lens_operand() const {
    return has_backend_operands() ? in_backend.seq_lens : std::span<const int32_t>(seq_lens);
  }
  std::span<const int32_t> slot_mapping_operand() const {
    return has_backend_operands() ? in_backend.slot_mapping
                                  : std::span<const int32_t>(slot_mapping);
  }
  // i32 [num_seqs, max_blocks_per_seq]: the backend copy, or a view of the host vector (valid
  // while the vector is).
  Tensor block_tables_operand() const {
    if (has_backend_operands()) return in_backend.block_tables;
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
    in_backend = Operands{};
  }
};

}  // namespace tessera::model

// Decode-step graph policy, padding and metadata layout (see step_graphs.h).
// Invariant: pack_metadata and bind_backend_operands agree on one MetadataLayout.
#include "tessera/runtime/step_graphs.h"

#include <algorithm>
#include <span>

#include "tessera/core/check.h"

namespace tessera::runtime {

std::vector<int32_t> graph_batch_sizes(int32_t max_batch) {
  std::vector<int32_t> sizes;
  for (int32_t b : {1, 2, 4}) {
    if (b < max_batch) sizes.push_back(b);
  }
  for (int32_t b = 8; b < max_batch; b += 8) sizes.push_back(b);
  if (max_batch > 0) sizes.push_back(max_batch);
  return sizes;
}

std::optional<GraphBucket> choose_graph_bucket(const StepGraphLimits& limits, int32_t num_seqs,
                                               int32_t max_seq_len) {
  if (limits.max_batch <= 0 || limits.block_size <= 0 || num_seqs <= 0 ||
      num_seqs > limits.max_batch || max_seq_len <= 0) {
    return std::nullopt;
  }
  const int32_t bs = limits.block_size;
  const auto round_up = [bs](int64_t n) { return (n + bs - 1) / bs * bs; };
  const int64_t cap = round_up(std::max(limits.max_context, 1));
  if (max_seq_len > cap) return std::nullopt;
  int64_t context = std::min(round_up(std::max(limits.min_context, 1)), cap);
  while (context < max_seq_len) context = std::min(context * 2, cap);
  GraphBucket bucket;
  bucket.context = static_cast<int32_t>(context);
  for (int32_t size : graph_batch_sizes(limits.max_batch)) {
    if (size >= num_seqs) {
      bucket.batch = size;
      break;
    }
  }
  return bucket;
}

bool is_pure_decode(const model::ForwardBatch& b) {
  const int32_t s = b.num_seqs();
  if (s == 0 || b.num_tokens() != s || b.num_logits() != s) return false;
  for (int32_t i = 0; i < s; ++i) {
    if (b.logits_indices[i] != i || b.query_start[i + 1] != i + 1) return false;
  }
  return true;
}

void pad_decode_batch(const model::ForwardBatch& decode, GraphBucket bucket, int32_t block_size,
                      model::ForwardBatch* padded) {
  const int32_t n = decode.num_seqs();
  TESSERA_CHECK(is_pure_decode(decode) && n <= bucket.batch && bucket.context % block_size == 0,
                "pad_decode_batch: {} rows into bucket ({}, {})", n, bucket.batch, bucket.context);
  const int32_t width = bucket.context / block_size;
  padded->clear();
  padded->max_blocks_per_seq = width;
  padded->block_tables.assign(static_cast<size_t>(bucket.batch) * width, 0);
  padded->query_start.push_back(0);
  for (int32_t i = 0; i < bucket.batch; ++i) {
    const bool real = i < n;
    const int32_t len = real ? decode.seq_lens[i] : 1;
    TESSERA_CHECK(len <= bucket.context, "pad_decode_batch: seq_len {} > bucket context {}", len,
                  bucket.context);
    padded->tokens.push_back(decode.tokens[real ? i : 0]);
    padded->positions.push_back(real ? decode.positions[i] : 0);
    padded->slot_mapping.push_back(real ? decode.slot_mapping[i] : -1);
    padded->seq_lens.push_back(len);
    padded->query_start.push_back(i + 1);
    padded->logits_indices.push_back(i);
    const int32_t used = (len + block_size - 1) / block_size;
    const int32_t* src =
        decode.block_tables.data() + static_cast<size_t>(real ? i : 0) * decode.max_blocks_per_seq;
    std::copy(src, src + used, padded->block_tables.begin() + static_cast<size_t>(i) * width);
  }
}

MetadataLayout MetadataLayout::of(int32_t num_tokens, int32_t num_seqs, int32_t max_blocks) {
  MetadataLayout l;
  l.num_tokens = num_tokens;
  l.num_seqs = num_seqs;
  l.max_blocks = max_blocks;
  l.tokens = 0;
  l.positions = l.tokens + num_tokens;
  l.slot_mapping = l.positions + num_tokens;
  l.query_start = l.slot_mapping + num_tokens;
  l.seq_lens = l.query_start + num_seqs + 1;
  l.block_tables = l.seq_lens + num_seqs;
  l.total = l.block_tables + int64_t{num_seqs} * max_blocks;
  return l;
}

MetadataLayout pack_metadata(const model::ForwardBatch& b, std::vector<int32_t>* packed) {
  const MetadataLayout l = MetadataLayout::of(b);
  packed->resize(static_cast<size_t>(l.total));
  const auto put = [&](const std::vector<int32_t>& v, int64_t offset) {
    std::copy(v.begin(), v.end(), packed->begin() + offset);
  };
  put(b.tokens, l.tokens);
  put(b.positions, l.positions);
  put(b.slot_mapping, l.slot_mapping);
  put(b.query_start, l.query_start);
  put(b.seq_lens, l.seq_lens);
  put(b.block_tables, l.block_tables);
  return l;
}

void bind_backend_operands(const Tensor& buffer, const MetadataLayout& layout,
                           model::ForwardBatch* b) {
  TESSERA_CHECK(buffer.dtype() == DType::kI32 && buffer.numel() >= layout.total,
                "metadata buffer {} holds fewer than {} ids", buffer.describe(), layout.total);
  const int32_t* base = buffer.data_as<const int32_t>();
  const auto span = [base](int64_t offset, int64_t n) {
    return std::span<const int32_t>(base + offset, static_cast<size_t>(n));
  };
  model::ForwardBatch::Operands& o = b->in_backend;
  o.tokens = span(layout.tokens, layout.num_tokens);
  o.positions = span(layout.positions, layout.num_tokens);
  o.slot_mapping = span(layout.slot_mapping, layout.num_tokens);
  o.query_start = span(layout.query_start, layout.num_seqs + 1);
  o.seq_lens = span(layout.seq_lens, layout.num_seqs);
  o.block_tables = Tensor(const_cast<int32_t*>(base + layout.block_tables), DType::kI32,
                          {layout.num_seqs, layout.max_blocks});
}

}  // namespace tessera::runtime

// The decode-graph policy (runtime/step_graphs.h): bucket choice, pure-decode detection, the
// padding of a decode step to its bucket, and the packed metadata layout. The model-level
// check (graph steps give the eager logits) is tests/models/decode_graph_test.cc.
#include "tessera/runtime/step_graphs.h"

#include <gtest/gtest.h>

#include <vector>

namespace tessera::runtime {
namespace {

using model::ForwardBatch;

TEST(StepGraphs, BatchSizes) {
  EXPECT_EQ(graph_batch_sizes(0), std::vector<int32_t>{});
  EXPECT_EQ(graph_batch_sizes(1), std::vector<int32_t>({1}));
  EXPECT_EQ(graph_batch_sizes(3), std::vector<int32_t>({1, 2, 3}));
  EXPECT_EQ(graph_batch_sizes(8), std::vector<int32_t>({1, 2, 4, 8}));
  EXPECT_EQ(graph_batch_sizes(20), std::vector<int32_t>({1, 2, 4, 8, 16, 20}));
  EXPECT_EQ(graph_batch_sizes(32), std::vector<int32_t>({1, 2, 4, 8, 16, 24, 32}));
}

TEST(StepGraphs, ChooseBucket) {
  const StepGraphLimits limits{
      .max_batch = 20, .max_context = 3000, .block_size = 16, .min_context = 500};
  // min_context rounds up to the block (512), doubles, and is capped at max_context rounded up
  // to the block (3008).
  EXPECT_EQ(choose_graph_bucket(limits, 1, 1), (GraphBucket{1, 512}));
  EXPECT_EQ(choose_graph_bucket(limits, 3, 512), (GraphBucket{4, 512}));
  EXPECT_EQ(choose_graph_bucket(limits, 5, 513), (GraphBucket{8, 1024}));
  EXPECT_EQ(choose_graph_bucket(limits, 9, 2048), (GraphBucket{16, 2048}));
  EXPECT_EQ(choose_graph_bucket(limits, 17, 2049), (GraphBucket{20, 3008}));
  EXPECT_EQ(choose_graph_bucket(limits, 20, 3008), (GraphBucket{20, 3008}));
  EXPECT_FALSE(choose_graph_bucket(limits, 21, 10).has_value());   // too many rows
  EXPECT_FALSE(choose_graph_bucket(limits, 2, 3009).has_value());  // too long
  EXPECT_FALSE(choose_graph_bucket(limits, 0, 10).has_value());
  EXPECT_FALSE(choose_graph_bucket({.max_batch = 0, .max_context = 64}, 1, 1).has_value());
  // A context cap below min_context: one bucket, the cap.
  EXPECT_EQ(choose_graph_bucket({.max_batch = 4, .max_context = 40, .block_size = 16}, 2, 7),
            (GraphBucket{2, 48}));
}

// Three decodes (seq_lens 5, 9, 3 over blocks of 4) as build_batch packs them.
ForwardBatch three_decodes() {
  ForwardBatch b;
  b.tokens = {11, 22, 33};
  b.positions = {4, 8, 2};
  b.seq_lens = {5, 9, 3};
  b.query_start = {0, 1, 2, 3};
  b.max_blocks_per_seq = 3;
  b.block_tables = {7, 2, -1, 4, 9, 6, 1, -1, -1};
  b.slot_mapping = {2 * 4 + 0, 6 * 4 + 0, 1 * 4 + 2};
  b.logits_indices = {0, 1, 2};
  return b;
}

TEST(StepGraphs, PureDecode) {
  ForwardBatch b = three_decodes();
  EXPECT_TRUE(is_pure_decode(b));
  ForwardBatch skip = b;
  skip.logits_indices = {0, 2};  // a row without logits (a prefill chunk's end)
  EXPECT_FALSE(is_pure_decode(skip));
  ForwardBatch reordered = b;
  reordered.logits_indices = {1, 0, 2};
  EXPECT_FALSE(is_pure_decode(reordered));
  ForwardBatch prefill = b;  // sequence 1 gets two new tokens
  prefill.tokens = {11, 21, 22, 33};
  prefill.positions = {4, 7, 8, 2};
  prefill.query_start = {0, 1, 3, 4};
  prefill.slot_mapping = {8, 23, 24, 6};
  prefill.logits_indices = {0, 2, 3};
  EXPECT_FALSE(is_pure_decode(prefill));
  EXPECT_FALSE(is_pure_decode(ForwardBatch{}));
}

TEST(StepGraphs, PadToBucket) {
  const ForwardBatch b = three_decodes();
  ForwardBatch p;
  pad_decode_batch(b, GraphBucket{4, 16}, 4, &p);
  EXPECT_EQ(p.num_tokens(), 4);
  EXPECT_EQ(p.num_seqs(), 4);
  EXPECT_EQ(p.max_blocks_per_seq, 4);  // 16 tokens / blocks of 4
  EXPECT_EQ(p.tokens, std::vector<int32_t>({11, 22, 33, 11}));
  EXPECT_EQ(p.positions, std::vector<int32_t>({4, 8, 2, 0}));
  EXPECT_EQ(p.seq_lens, std::vector<int32_t>({5, 9, 3, 1}));
  EXPECT_EQ(p.slot_mapping, std::vector<int32_t>({8, 24, 6, -1}));  // padding writes nothing
  EXPECT_EQ(p.query_start, std::vector<int32_t>({0, 1, 2, 3, 4}));
  EXPECT_EQ(p.logits_indices, std::vector<int32_t>({0, 1, 2, 3}));
  // Used entries copied, the rest 0; the padding row reads row 0's first block (key 0).
  EXPECT_EQ(p.block_tables, std::vector<int32_t>({7, 2, 0, 0, 4, 9, 6, 0, 1, 0, 0, 0, 7, 0, 0, 0}));
  EXPECT_TRUE(is_pure_decode(p));
  EXPECT_FALSE(p.has_backend_operands());
  // The same bucket size: no padding rows, only wider tables.
  pad_decode_batch(b, GraphBucket{3, 12}, 4, &p);
  EXPECT_EQ(p.num_seqs(), 3);
  EXPECT_EQ(p.block_tables, std::vector<int32_t>({7, 2, 0, 4, 9, 6, 1, 0, 0}));
}

TEST(StepGraphs, PackAndBindAgree) {
  ForwardBatch b = three_decodes();
  std::vector<int32_t> packed(100, -7);
  const MetadataLayout l = pack_metadata(b, &packed);
  EXPECT_EQ(l.total, 3 * 3 + 4 + 3 + 9);
  EXPECT_EQ(packed.size(), static_cast<size_t>(l.total));
  // Bind to the host copy itself: every view then reads back the batch's fields.
  OwnedTensor buffer(DType::kI32, {l.total + 5});
  std::copy(packed.begin(), packed.end(), buffer.view().data_as<int32_t>());
  bind_backend_operands(buffer.view(), l, &b);
  ASSERT_TRUE(b.has_backend_operands());
  const auto vec = [](std::span<const int32_t> s) {
    return std::vector<int32_t>(s.begin(), s.end());
  };
  EXPECT_EQ(vec(b.tokens_operand()), b.tokens);
  EXPECT_EQ(vec(b.positions_operand()), b.positions);
  EXPECT_EQ(vec(b.slot_mapping_operand()), b.slot_mapping);
  EXPECT_EQ(vec(b.query_start_operand()), b.query_start);
  EXPECT_EQ(vec(b.seq_lens_operand()), b.seq_lens);
  const Tensor t = b.block_tables_operand();
  ASSERT_EQ(t.dim(0), 3);
  ASSERT_EQ(t.dim(1), 3);
  EXPECT_EQ(std::vector<int32_t>(t.data_as<const int32_t>(), t.data_as<const int32_t>() + 9),
            b.block_tables);
  b.clear();
  EXPECT_FALSE(b.has_backend_operands());
}

}  // namespace
}  // namespace tessera::runtime

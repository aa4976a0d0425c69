// BlockManager unit tests, no model: allocation and refusal when full, prefix-cache hits,
// salts, LRU eviction of cached free blocks, hash collisions, fork with copy-on-write.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "tessera/kv/block_hash.h"
#include "tessera/kv/block_manager.h"

namespace tessera::kv {
namespace {

std::vector<TokenId> iota_tokens(int n, TokenId first = 100) {
  std::vector<TokenId> t(n);
  std::iota(t.begin(), t.end(), first);
  return t;
}

std::vector<BlockId> table(const BlockManager& m, SeqId seq) {
  const auto t = m.block_table(seq);
  return {t.begin(), t.end()};
}

BlockManagerConfig config(int num_blocks, int block_size) {
  BlockManagerConfig c;
  c.num_blocks = num_blocks;
  c.block_size = block_size;
  return c;
}

TEST(BlockHash, DependsOnEveryInput) {
  const std::vector<TokenId> a = {1, 2, 3, 4}, b = {1, 2, 4, 3}, c = {1, 2, 3};
  const uint64_t h = hash_block(kRootBlockHash, 0, a);
  EXPECT_EQ(h, hash_block(kRootBlockHash, 0, a));
  EXPECT_NE(h, hash_block(kRootBlockHash, 0, b));
  EXPECT_NE(h, hash_block(kRootBlockHash, 0, c));
  EXPECT_NE(h, hash_block(kRootBlockHash, 1, a));
  EXPECT_NE(h, hash_block(h, 0, a));
  // Token ids are 32-bit: a high bit must matter.
  EXPECT_NE(hash_block(0, 0, std::vector<TokenId>{0}),
            hash_block(0, 0, std::vector<TokenId>{static_cast<TokenId>(0x80000000u)}));
}

TEST(BlockManager, AllocatesGrowsAndFrees) {
  BlockManager m(config(8, 4));
  const auto tokens = iota_tokens(13);
  ASSERT_TRUE(m.add_sequence(1, tokens, 0, 10, 0));
  EXPECT_EQ(table(m, 1), (std::vector<BlockId>{0, 1, 2}));
  EXPECT_EQ(m.num_slots(1), 10);
  EXPECT_EQ(m.num_free_blocks(), 5);
  ASSERT_TRUE(m.allocate_slots(1, tokens, 2));  // 12 slots: still 3 blocks
  EXPECT_EQ(m.num_free_blocks(), 5);
  ASSERT_TRUE(m.allocate_slots(1, tokens, 1));  // 13 slots: a 4th block
  EXPECT_EQ(table(m, 1).size(), 4u);
  m.check_invariants();
  m.free(1);
  EXPECT_FALSE(m.has_sequence(1));
  EXPECT_EQ(m.num_free_blocks(), 8);
  m.check_invariants();
}

TEST(BlockManager, SaysNoWhenFullAndChangesNothing) {
  BlockManager m(config(4, 4));
  const auto a = iota_tokens(20, 0), b = iota_tokens(8, 500);
  ASSERT_TRUE(m.add_sequence(1, a, 0, 12, 0));  // 3 blocks
  EXPECT_FALSE(m.add_sequence(2, b, 0, 8, 0));  // needs 2, 1 free
  EXPECT_FALSE(m.has_sequence(2));
  EXPECT_FALSE(m.allocate_slots(1, a, 5));  // needs 2 more
  EXPECT_EQ(m.num_slots(1), 12);
  EXPECT_EQ(m.num_free_blocks(), 1);
  EXPECT_TRUE(m.allocate_slots(1, a, 4));
  EXPECT_EQ(m.num_free_blocks(), 0);
  m.check_invariants();
}

TEST(BlockManager, PrefixLookupLeavesTheLastTokenToCompute) {
  BlockManager m(config(16, 4));
  const auto a = iota_tokens(10);
  ASSERT_TRUE(m.add_sequence(1, a, 0, 10, 0));  // blocks 0, 1 full and cached; 2 partial
  EXPECT_TRUE(m.is_cached(0));
  EXPECT_TRUE(m.is_cached(1));
  EXPECT_FALSE(m.is_cached(2));

  EXPECT_EQ(m.lookup_prefix(std::span(a).first(8), 0), 4);  // 8 tokens: the last must compute
  EXPECT_EQ(m.lookup_prefix(std::span(a).first(9), 0), 8);
  EXPECT_EQ(m.lookup_prefix(a, 0), 8);
  auto b = a;
  b[5] = 7;  // differs in the second block
  EXPECT_EQ(m.lookup_prefix(b, 0), 4);
  b[0] = 7;
  EXPECT_EQ(m.lookup_prefix(b, 0), 0);
  EXPECT_EQ(m.lookup_prefix(a, /*salt=*/42), 0);  // another namespace

  auto c = a;
  c.insert(c.end(), {1, 2, 3});  // 13 tokens, the first 8 cached
  ASSERT_EQ(m.lookup_prefix(c, 0), 8);
  ASSERT_TRUE(m.add_sequence(2, c, 8, 5, 0));
  const auto t2 = table(m, 2);
  EXPECT_EQ(t2[0], 0);
  EXPECT_EQ(t2[1], 1);
  EXPECT_EQ(m.ref_count(0), 2);
  EXPECT_EQ(m.ref_count(1), 2);
  EXPECT_EQ(m.ref_count(2), 1);
  const PrefixCacheStats& s = m.prefix_cache_stats();
  EXPECT_EQ(s.num_queries, 2);
  EXPECT_EQ(s.num_hits, 1);
  EXPECT_EQ(s.num_query_tokens, 23);
  EXPECT_EQ(s.num_hit_tokens, 8);
  m.check_invariants();
}

TEST(BlockManager, FreedCachedBlocksAreReusedAndEvictedLruLast) {
  BlockManager m(config(5, 4));
  const auto a = iota_tokens(9);
  ASSERT_TRUE(m.add_sequence(1, a, 0, 9, 0));  // blocks 0, 1 cached; 2 partial
  m.free(1);
  EXPECT_EQ(m.num_free_blocks(), 5);
  EXPECT_EQ(m.lookup_prefix(a, 0), 8);  // the cache survives the sequence

  // Three blocks for other content come from the uncached ones first.
  const auto b = iota_tokens(12, 900);
  ASSERT_TRUE(m.add_sequence(2, b, 0, 12, 0));
  EXPECT_EQ(m.lookup_prefix(a, 0), 8);
  EXPECT_EQ(m.prefix_cache_stats().num_evictions, 0);

  // Nothing uncached is left: the next block evicts the LRU cached one, the sequence's tail
  // block (freed first), so its first block stays reusable.
  const auto c = iota_tokens(3, 2000);
  ASSERT_TRUE(m.add_sequence(3, c, 0, 3, 0));
  EXPECT_EQ(m.prefix_cache_stats().num_evictions, 1);
  EXPECT_EQ(m.lookup_prefix(a, 0), 4);
  m.check_invariants();

  // A hit on a free cached block takes it out of the free pool.
  ASSERT_TRUE(m.add_sequence(4, a, 4, 0, 0));
  EXPECT_EQ(m.num_free_blocks(), 0);
  EXPECT_FALSE(m.add_sequence(5, iota_tokens(1, 7000), 0, 1, 0));
  m.check_invariants();
}

TEST(BlockManager, HashCollisionsCompareTokens) {
  BlockManagerConfig c = config(64, 4);
  c.hash_mask_for_testing = 0;  // every block gets the same hash
  BlockManager m(c);
  std::vector<std::vector<TokenId>> prompts;
  for (int i = 0; i < 6; ++i) {
    prompts.push_back(iota_tokens(13, 10 * i));
    ASSERT_TRUE(m.add_sequence(i, prompts.back(), 0, 13, 0));
  }
  for (int i = 0; i < 6; ++i) EXPECT_EQ(m.lookup_prefix(prompts[i], 0), 12);
  auto other = prompts[2];
  other[10] = -5;
  EXPECT_EQ(m.lookup_prefix(other, 0), 8);
  EXPECT_EQ(m.lookup_prefix(iota_tokens(13, 5), 0), 0);
  for (int i = 0; i < 6; ++i) m.free(i);
  m.check_invariants();
}

TEST(BlockManager, DuplicateContentIsCachedOnce) {
  BlockManager m(config(8, 4));
  const auto a = iota_tokens(8);
  // Two sequences computed the same prompt before either was cached.
  ASSERT_TRUE(m.add_sequence(1, a, 0, 8, 0));
  ASSERT_TRUE(m.add_sequence(2, a, 0, 8, 0));
  int num_cached = 0;
  for (BlockId b = 0; b < 8; ++b) num_cached += m.is_cached(b);
  EXPECT_EQ(num_cached, 2);
  m.free(1);
  m.free(2);
  EXPECT_EQ(m.lookup_prefix(iota_tokens(9), 0), 8);
  m.check_invariants();
}

TEST(BlockManager, ForkSharesBlocksAndCopiesOnWrite) {
  BlockManager m(config(16, 4));
  auto a = iota_tokens(6);  // blocks: one full, one partial
  ASSERT_TRUE(m.add_sequence(1, a, 0, 6, 0));
  m.fork(1, 2);
  m.fork(1, 3);
  EXPECT_EQ(table(m, 2), table(m, 1));
  const BlockId shared_tail = table(m, 1)[1];
  EXPECT_EQ(m.ref_count(shared_tail), 3);
  m.check_invariants();

  auto t2 = a, t3 = a;
  a.push_back(1);
  t2.push_back(2);
  t3.push_back(3);
  ASSERT_TRUE(m.allocate_slots(2, t2, 1));  // shared partial block: copied
  ASSERT_TRUE(m.allocate_slots(3, t3, 1));
  ASSERT_TRUE(m.allocate_slots(1, a, 1));  // last holder: writes in place
  const auto copies = m.take_block_copies();
  ASSERT_EQ(copies.size(), 2u);
  EXPECT_EQ(copies[0].src, shared_tail);
  EXPECT_EQ(copies[0].dst, table(m, 2)[1]);
  EXPECT_EQ(copies[1].src, shared_tail);
  EXPECT_EQ(copies[1].dst, table(m, 3)[1]);
  EXPECT_EQ(table(m, 1)[1], shared_tail);
  EXPECT_EQ(m.ref_count(shared_tail), 1);
  EXPECT_EQ(m.ref_count(table(m, 1)[0]), 3);  // the full prompt block stays shared
  EXPECT_TRUE(m.take_block_copies().empty());
  m.check_invariants();
}

TEST(BlockManager, ForkOnABlockBoundaryNeedsNoCopy) {
  BlockManager m(config(16, 4));
  auto a = iota_tokens(8);
  ASSERT_TRUE(m.add_sequence(1, a, 0, 8, 0));
  m.fork(1, 2);
  a.push_back(9);
  ASSERT_TRUE(m.allocate_slots(2, a, 1));
  EXPECT_TRUE(m.take_block_copies().empty());
  EXPECT_EQ(table(m, 2).size(), 3u);
  m.check_invariants();
}

TEST(BlockManager, FreeDropsCopiesIntoItsBlocks) {
  BlockManager m(config(16, 4));
  auto a = iota_tokens(6);
  ASSERT_TRUE(m.add_sequence(1, a, 0, 6, 0));
  m.fork(1, 2);
  a.push_back(1);
  ASSERT_TRUE(m.allocate_slots(2, a, 1));
  m.free(2);
  EXPECT_TRUE(m.take_block_copies().empty());
  m.check_invariants();
}

TEST(BlockManager, PrefixCachingCanBeDisabled) {
  BlockManagerConfig c = config(8, 4);
  c.enable_prefix_caching = false;
  BlockManager m(c);
  const auto a = iota_tokens(9);
  ASSERT_TRUE(m.add_sequence(1, a, 0, 9, 0));
  m.free(1);
  EXPECT_EQ(m.lookup_prefix(a, 0), 0);
  for (BlockId b = 0; b < 8; ++b) EXPECT_FALSE(m.is_cached(b));
  m.check_invariants();
}

}  // namespace
}  // namespace tessera::kv

// Randomised BlockManager test: random arrivals (with shared prefixes), growth, forks, aborts
// and preemptions over a small pool. After every operation the manager's invariants hold and
// a shadow KV store (token ids written into block slots, copies applied) proves that every
// sequence's blocks hold exactly its tokens — so prefix hits and copy-on-write return the
// right content, not just consistent counts.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "tessera/kv/block_manager.h"

namespace tessera::kv {
namespace {

class ShadowKv {
 public:
  ShadowKv(int num_blocks, int block_size)
      : block_size_(block_size), slots_(static_cast<size_t>(num_blocks) * block_size, -1) {}

  void apply_copies(const std::vector<BlockCopy>& copies) {
    for (const BlockCopy& c : copies) {
      for (int i = 0; i < block_size_; ++i) slot(c.dst, i) = slot(c.src, i);
    }
  }
  // "Computes" tokens [from, to) of a sequence: writes them into its slots.
  void write(std::span<const BlockId> table, const std::vector<TokenId>& tokens, int from, int to) {
    for (int p = from; p < to; ++p) slot(table[p / block_size_], p % block_size_) = tokens[p];
  }
  void expect_holds(std::span<const BlockId> table, const std::vector<TokenId>& tokens, int n,
                    SeqId seq) const {
    for (int p = 0; p < n; ++p) {
      ASSERT_EQ(slots_[table[p / block_size_] * block_size_ + p % block_size_], tokens[p])
          << "sequence " << seq << " position " << p;
    }
  }

 private:
  TokenId& slot(BlockId b, int i) { return slots_[static_cast<size_t>(b) * block_size_ + i]; }
  int block_size_;
  std::vector<TokenId> slots_;
};

struct Seq {
  std::vector<TokenId> tokens;  // known tokens; the first `computed` have KV
  int computed = 0;
  uint64_t salt = 0;
};

void run_random(uint32_t seed, uint64_t hash_mask) {
  constexpr int kNumBlocks = 24, kBlockSize = 4;
  BlockManagerConfig config;
  config.num_blocks = kNumBlocks;
  config.block_size = kBlockSize;
  config.hash_mask_for_testing = hash_mask;
  BlockManager m(config);
  ShadowKv kv(kNumBlocks, kBlockSize);
  std::mt19937 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  // A few shared prefixes (system prompts) over a tiny vocabulary make hits frequent.
  std::vector<std::vector<TokenId>> prefixes(3);
  for (auto& p : prefixes) {
    for (int i = 0, n = uniform(3, 12); i < n; ++i) p.push_back(uniform(0, 3));
  }
  std::map<SeqId, Seq> live;  // sequences holding blocks
  SeqId next_id = 0;
  int64_t hits = 0, allocations_refused = 0;

  // Grows `seq` by up to `n` tokens (its next known tokens, or new "sampled" ones).
  auto grow = [&](SeqId id, Seq& s, int n) {
    while (static_cast<int>(s.tokens.size()) < s.computed + n) s.tokens.push_back(uniform(0, 3));
    if (!m.allocate_slots(id, s.tokens, n)) {
      ++allocations_refused;
      return;
    }
    kv.apply_copies(m.take_block_copies());
    kv.write(m.block_table(id), s.tokens, s.computed, s.computed + n);
    s.computed += n;
  };

  for (int step = 0; step < 3000; ++step) {
    const int op = uniform(0, 99);
    if (op < 30 || live.empty()) {  // arrival
      Seq s;
      s.salt = uniform(0, 4) == 0 ? 7 : 0;
      s.tokens = prefixes[uniform(0, 2)];
      for (int i = 0, n = uniform(1, 10); i < n; ++i) s.tokens.push_back(uniform(0, 3));
      const int cached = m.lookup_prefix(s.tokens, s.salt);
      ASSERT_LT(cached, static_cast<int>(s.tokens.size()));
      ASSERT_EQ(cached % kBlockSize, 0);
      const int num_new = uniform(1, static_cast<int>(s.tokens.size()) - cached);  // a chunk
      const SeqId id = next_id++;
      if (m.add_sequence(id, s.tokens, cached, num_new, s.salt)) {
        hits += cached > 0;
        kv.expect_holds(m.block_table(id), s.tokens, cached, id);  // the hit is the right KV
        kv.write(m.block_table(id), s.tokens, cached, cached + num_new);
        s.computed = cached + num_new;
        live.emplace(id, std::move(s));
      } else {
        ++allocations_refused;
      }
    } else {
      auto it = live.begin();
      std::advance(it, uniform(0, static_cast<int>(live.size()) - 1));
      const SeqId id = it->first;
      Seq& s = it->second;
      if (op < 70) {  // growth: a prefill chunk or a decode token
        grow(id, s, uniform(0, 3) == 0 ? uniform(1, 6) : 1);
      } else if (op < 78 && static_cast<int>(s.tokens.size()) == s.computed) {  // n > 1 fork
        m.fork(id, next_id);
        live.emplace(next_id++, s);
      } else {  // finish, abort or preemption: all free the blocks
        m.free(id);
        live.erase(it);
      }
    }
    m.check_invariants();
    for (const auto& [id, s] : live) {
      ASSERT_EQ(m.num_slots(id), s.computed);
      ASSERT_NO_FATAL_FAILURE(kv.expect_holds(m.block_table(id), s.tokens, s.computed, id));
    }
  }
  for (const auto& [id, s] : live) m.free(id);
  m.check_invariants();
  EXPECT_EQ(m.num_free_blocks(), kNumBlocks);
  // The test must have exercised the interesting paths.
  EXPECT_GT(hits, 50);
  EXPECT_GT(allocations_refused, 10);
  EXPECT_GT(m.prefix_cache_stats().num_evictions, 10);
}

TEST(BlockManagerRandom, InvariantsAndContentHoldEveryStep) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(seed);
    run_random(seed, ~0ull);
  }
}

TEST(BlockManagerRandom, InvariantsHoldUnderHashCollisions) {
  for (uint32_t seed = 11; seed <= 13; ++seed) {
    SCOPED_TRACE(seed);
    run_random(seed, 0x3);  // four buckets for every block
  }
}

}  // namespace
}  // namespace tessera::kv

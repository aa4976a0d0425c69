// Scheduler soak: random arrivals (shared system prompts, priorities), random stops and
// aborts, over a pool small enough to preempt often. Every step: invariants (blocks accounted,
// no sequence both running and waiting), budget and sequence cap respected, and a shadow KV
// store proves each scheduled sequence's blocks hold its computed tokens (prefix hits and
// recompute included). At the end every request has finished exactly once.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <vector>

#include "tessera/kv/block_manager.h"
#include "tessera/sched/scheduler.h"

namespace tessera::sched {
namespace {

void run_soak(uint32_t seed, bool chunked) {
  constexpr int kBlockSize = 4, kNumBlocks = 14, kMaxSeqs = 4;
  const int kBudget = chunked ? 12 : 20;  // without chunking every prompt (<= 19) must fit
  kv::BlockManagerConfig kv_config;
  kv_config.num_blocks = kNumBlocks;
  kv_config.block_size = kBlockSize;
  kv::BlockManager blocks(kv_config);
  SchedulerConfig config;
  config.max_num_batched_tokens = kBudget;
  config.max_num_seqs = kMaxSeqs;
  config.enable_chunked_prefill = chunked;
  Scheduler sched(config, &blocks);

  std::mt19937 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<std::vector<TokenId>> systems(3);
  for (auto& s : systems) {
    for (int i = 0, n = uniform(4, 9); i < n; ++i) s.push_back(uniform(0, 3));
  }
  std::vector<TokenId> kv_slots(kNumBlocks * kBlockSize, -1);  // shadow KV: a token per slot
  std::set<SeqId> submitted, finished;
  SeqId next_id = 0;
  int64_t steps_with_work = 0;

  constexpr int kArrivalSteps = 400, kMaxSteps = 4000;
  for (int step = 0; step < kMaxSteps; ++step) {
    if (step >= kArrivalSteps && !sched.has_unfinished()) break;
    if (step < kArrivalSteps) {
      for (int i = 0, n = uniform(0, 2) == 0 ? uniform(1, 2) : 0; i < n; ++i) {
        SeqRequest r;
        r.id = next_id++;
        r.prompt = systems[uniform(0, 2)];
        for (int j = 0, m = uniform(1, 10); j < m; ++j) r.prompt.push_back(uniform(0, 3));
        r.max_new_tokens = uniform(1, 12);
        r.priority = uniform(0, 2);
        ASSERT_TRUE(sched.add_request(r).ok());
        submitted.insert(r.id);
      }
      if (uniform(0, 19) == 0 && !submitted.empty()) {  // a client goes away, at any point
        sched.abort(*std::next(submitted.begin(), uniform(0, submitted.size() - 1)));
      }
    }

    const SchedulerOutput out = sched.schedule();
    sched.check_invariants();
    int32_t total = 0;
    std::set<SeqId> ids;
    for (const ScheduledSeq& s : out.seqs) {
      ASSERT_TRUE(ids.insert(s.id).second) << "scheduled twice: " << s.id;
      ASSERT_GT(s.num_new_tokens, 0);
      total += s.num_new_tokens;
      const Sequence* seq = sched.find(s.id);
      ASSERT_NE(seq, nullptr);
      ASSERT_EQ(seq->status, SeqStatus::kRunning);
      ASSERT_EQ(seq->num_computed_tokens, s.num_computed_tokens + s.num_new_tokens);
      ASSERT_EQ(static_cast<int>(s.block_table.size()),
                blocks.blocks_for(s.num_computed_tokens + s.num_new_tokens));
      ASSERT_EQ(s.sample, seq->num_computed_tokens == seq->num_tokens());
    }
    ASSERT_EQ(total, out.num_batched_tokens);
    ASSERT_LE(total, kBudget);
    ASSERT_LE(static_cast<int>(out.seqs.size()), kMaxSeqs);
    for (SeqId id : out.preempted) ASSERT_EQ(ids.count(id), 0u) << "preempted yet scheduled";
    for (const FinishedSeq& f : out.finished) {
      ASSERT_TRUE(finished.insert(f.id).second) << "finished twice: " << f.id;
      ASSERT_EQ(sched.find(f.id), nullptr);
    }

    // "Run" the step on the shadow KV: copies first, then check the cached prefix and write.
    for (const kv::BlockCopy& c : out.block_copies) {
      for (int i = 0; i < kBlockSize; ++i) {
        kv_slots[c.dst * kBlockSize + i] = kv_slots[c.src * kBlockSize + i];
      }
    }
    for (const ScheduledSeq& s : out.seqs) {
      const std::vector<TokenId>& tokens = sched.find(s.id)->tokens;
      auto slot = [&](int p) -> TokenId& {
        return kv_slots[s.block_table[p / kBlockSize] * kBlockSize + p % kBlockSize];
      };
      for (int p = 0; p < s.num_computed_tokens; ++p) {
        ASSERT_EQ(slot(p), tokens[p]) << "sequence " << s.id << " position " << p;
      }
      for (int p = s.num_computed_tokens; p < s.num_computed_tokens + s.num_new_tokens; ++p) {
        slot(p) = tokens[p];
      }
    }
    steps_with_work += !out.seqs.empty();
    for (const ScheduledSeq& s : out.seqs) {
      if (!s.sample) continue;
      sched.append_token(s.id, uniform(0, 3));
      if (uniform(0, 29) == 0) sched.finish(s.id, FinishReason::kStop);  // a stop token
    }
  }
  const SchedulerOutput last = sched.schedule();  // reports the last finishes
  for (const FinishedSeq& f : last.finished) ASSERT_TRUE(finished.insert(f.id).second);
  EXPECT_FALSE(sched.has_unfinished()) << "requests still pending after " << kMaxSteps;
  EXPECT_EQ(finished, submitted);
  EXPECT_EQ(blocks.num_free_blocks(), kNumBlocks);
  blocks.check_invariants();
  // The soak must have exercised the interesting paths.
  EXPECT_GT(sched.num_preemptions(), 5);
  EXPECT_GT(blocks.prefix_cache_stats().num_hits, 20);
  EXPECT_GT(steps_with_work, 200);
}

TEST(SchedulerSoak, RandomTrafficKeepsEveryInvariant) {
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    SCOPED_TRACE(seed);
    run_soak(seed, /*chunked=*/true);
  }
}

TEST(SchedulerSoak, RandomTrafficWithoutChunkedPrefill) {
  for (uint32_t seed = 21; seed <= 22; ++seed) {
    SCOPED_TRACE(seed);
    run_soak(seed, /*chunked=*/false);
  }
}

}  // namespace
}  // namespace tessera::sched

// Scheduler iteration traces, no model: a fake model loop appends one token per sequence the
// step samples, and each test writes the expected step-by-step schedule out as a table.
// Row format: "id:num_new_tokens" ('*' = sampled this step), then "preempt:ids" and
// "done:id=reason" for what schedule() reported.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "tessera/kv/block_manager.h"
#include "tessera/sched/scheduler.h"

namespace tessera::sched {
namespace {

const char* reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kAborted:
      return "abort";
  }
  return "?";
}

std::vector<TokenId> iota_tokens(int n, TokenId first) {
  std::vector<TokenId> t(n);
  std::iota(t.begin(), t.end(), first);
  return t;
}

kv::BlockManagerConfig kv_config(int num_blocks, int block_size) {
  kv::BlockManagerConfig c;
  c.num_blocks = num_blocks;
  c.block_size = block_size;
  return c;
}

SchedulerConfig sched_config(int budget, int max_num_seqs) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.max_num_seqs = max_num_seqs;
  return c;
}

class Harness {
 public:
  Harness(const kv::BlockManagerConfig& kv, const SchedulerConfig& config)
      : blocks(kv), sched(config, &blocks) {}

  void add(SeqId id, std::vector<TokenId> prompt, int max_new_tokens, int priority = 0) {
    SeqRequest r;
    r.id = id;
    r.prompt = std::move(prompt);
    r.max_new_tokens = max_new_tokens;
    r.priority = priority;
    ASSERT_TRUE(sched.add_request(std::move(r)).ok());
  }

  // One iteration: schedule, "run" the model, append a token for every sampled sequence.
  std::string step() {
    last = sched.schedule();
    std::string row;
    auto sep = [&row] { return row.empty() ? "" : " "; };
    for (const ScheduledSeq& s : last.seqs) {
      row += fmt::format("{}{}:{}{}", sep(), s.id, s.num_new_tokens, s.sample ? "*" : "");
    }
    if (!last.preempted.empty()) row += fmt::format("{}preempt:{}", sep(), ids(last.preempted));
    if (!last.finished.empty()) {
      std::string done;
      for (const FinishedSeq& f : last.finished) {
        done += fmt::format("{}{}={}", done.empty() ? "" : ",", f.id, reason_name(f.reason));
      }
      row += fmt::format("{}done:{}", sep(), done);
    }
    for (const ScheduledSeq& s : last.seqs) {
      if (s.sample) sched.append_token(s.id, 7);
    }
    sched.check_invariants();
    return row;
  }

  void expect_trace(const std::vector<std::string>& expected) {
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(step(), expected[i]) << "step " << i;
  }

  const ScheduledSeq* scheduled(SeqId id) const {
    for (const ScheduledSeq& s : last.seqs) {
      if (s.id == id) return &s;
    }
    return nullptr;
  }

  kv::BlockManager blocks;
  Scheduler sched;
  SchedulerOutput last;

 private:
  static std::string ids(const std::vector<SeqId>& v) {
    std::string s;
    for (SeqId id : v) s += fmt::format("{}{}", s.empty() ? "" : ",", id);
    return s;
  }
};

TEST(SchedulerTrace, BudgetIsSplitAcrossPrompts) {
  Harness h(kv_config(64, 4), sched_config(/*budget=*/10, /*max_num_seqs=*/8));
  h.add(1, iota_tokens(6, 100), 3);
  h.add(2, iota_tokens(6, 200), 3);
  h.expect_trace({
      "1:6* 2:4",  // 2 gets what is left of the budget
      "1:1* 2:2*",
      "1:1* 2:1*",
      "2:1* done:1=length",
      "done:2=length",
  });
  EXPECT_FALSE(h.sched.has_unfinished());
  EXPECT_EQ(h.blocks.num_free_blocks(), 64);
}

TEST(SchedulerTrace, ChunkedPrefillNeverStallsRunningDecodes) {
  Harness h(kv_config(64, 4), sched_config(/*budget=*/8, /*max_num_seqs=*/8));
  h.add(1, iota_tokens(3, 100), 10);
  EXPECT_EQ(h.step(), "1:3*");
  h.add(2, iota_tokens(20, 200), 2);  // a long prompt arrives while 1 is decoding
  h.expect_trace({
      "1:1* 2:7",
      "1:1* 2:7",
      "1:1* 2:6*",
      "1:1* 2:1*",
      "1:1* done:2=length",
  });
  EXPECT_EQ(h.scheduled(1)->num_computed_tokens, 7);  // 3 prompt + 4 decoded tokens
}

TEST(SchedulerTrace, ChunkPositionsAndBlockTables) {
  Harness h(kv_config(64, 4), sched_config(/*budget=*/8, /*max_num_seqs=*/8));
  h.add(1, iota_tokens(13, 100), 1);
  EXPECT_EQ(h.step(), "1:8");
  EXPECT_EQ(h.scheduled(1)->num_computed_tokens, 0);
  EXPECT_EQ(h.scheduled(1)->block_table, (std::vector<BlockId>{0, 1}));
  EXPECT_EQ(h.step(), "1:5*");
  EXPECT_EQ(h.scheduled(1)->num_computed_tokens, 8);
  EXPECT_EQ(h.scheduled(1)->block_table, (std::vector<BlockId>{0, 1, 2, 3}));
  EXPECT_EQ(h.step(), "done:1=length");
}

TEST(SchedulerTrace, MaxNumSeqsCapsTheBatch) {
  Harness h(kv_config(64, 4), sched_config(/*budget=*/100, /*max_num_seqs=*/2));
  for (SeqId id = 1; id <= 3; ++id) h.add(id, iota_tokens(2, 100 * id), 2);
  h.expect_trace({
      "1:2* 2:2*",  // 3 waits: two sequences at most
      "1:1* 2:1*",
      "3:2* done:1=length,2=length",
      "3:1*",
      "done:3=length",
  });
}

TEST(SchedulerTrace, PriorityOrdersAdmissionLowerValueFirst) {
  Harness h(kv_config(64, 4), sched_config(/*budget=*/100, /*max_num_seqs=*/2));
  h.add(1, iota_tokens(4, 100), 2, /*priority=*/1);
  h.add(2, iota_tokens(4, 200), 2, /*priority=*/0);
  h.add(3, iota_tokens(4, 300), 2, /*priority=*/0);
  h.expect_trace({
      "2:4* 3:4*",  // 1 arrived first but is less important
      "2:1* 3:1*",
      "1:4* done:2=length,3=length",
      "1:1*",
      "done:1=length",
  });
}

TEST(SchedulerTrace, PreemptsTheNewestUnderATinyPoolAndRecomputesLater) {
  // 4 blocks of 2 tokens: room for 8 tokens in all.
  Harness h(kv_config(4, 2), sched_config(/*budget=*/100, /*max_num_seqs=*/8));
  h.add(1, {10, 11, 12}, 4);
  h.add(2, {20, 21, 22}, 4);
  h.expect_trace({
      "1:3* 2:3*",           // 2 blocks each: the pool is full
      "1:1* 2:1*",           // 4 tokens each still fit
      "1:1* preempt:2",      // 1 needs a third block: 2 (newest) gives its blocks back
      "1:1*",                // 2 cannot come back yet (needs 2 blocks, 0 free)
      "2:3* done:1=length",  // recompute: its first block [20 21] is still cached
      "2:1*",
      "done:2=length",
  });
  EXPECT_EQ(h.sched.num_preemptions(), 1);
  EXPECT_EQ(h.blocks.prefix_cache_stats().num_hit_tokens, 2);
  EXPECT_EQ(h.blocks.num_free_blocks(), 4);
}

TEST(SchedulerTrace, PreemptsTheLeastImportantFirst) {
  Harness h(kv_config(4, 2), sched_config(/*budget=*/100, /*max_num_seqs=*/8));
  h.add(1, {10, 11, 12}, 4, /*priority=*/1);
  h.add(2, {20, 21, 22}, 4, /*priority=*/0);
  h.expect_trace({
      "2:3* 1:3*",  // scheduling order: priority, not arrival
      "2:1* 1:1*",
      "2:1* preempt:1",  // 1 is older but less important
  });
}

TEST(SchedulerTrace, AbortMidPrefillAndMidDecodeFreesEverything) {
  Harness h(kv_config(16, 4), sched_config(/*budget=*/4, /*max_num_seqs=*/8));
  h.add(1, iota_tokens(10, 100), 5);
  h.add(2, iota_tokens(2, 200), 5);
  h.expect_trace({"1:4", "1:4"});
  EXPECT_TRUE(h.sched.abort(1));  // mid-prefill
  h.expect_trace({"2:2* done:1=abort", "2:1*"});
  EXPECT_TRUE(h.sched.abort(2));  // mid-decode
  EXPECT_FALSE(h.sched.abort(2));
  EXPECT_EQ(h.step(), "done:2=abort");
  EXPECT_FALSE(h.sched.has_unfinished());
  EXPECT_EQ(h.blocks.num_free_blocks(), 16);
}

TEST(SchedulerTrace, AbortWhileWaiting) {
  Harness h(kv_config(16, 4), sched_config(/*budget=*/4, /*max_num_seqs=*/8));
  h.add(1, iota_tokens(8, 100), 1);
  h.add(2, iota_tokens(2, 200), 1);
  EXPECT_EQ(h.step(), "1:4");
  EXPECT_TRUE(h.sched.abort(2));
  h.expect_trace({"1:4* done:2=abort", "done:1=length"});
}

TEST(SchedulerTrace, PrefixCacheHitSkipsComputedTokens) {
  Harness h(kv_config(64, 4), sched_config(/*budget=*/100, /*max_num_seqs=*/8));
  std::vector<TokenId> system = iota_tokens(8, 1);
  auto prompt1 = system, prompt2 = system;
  prompt1.insert(prompt1.end(), {50, 51});
  prompt2.insert(prompt2.end(), {60, 61, 62});
  h.add(1, prompt1, 2);
  EXPECT_EQ(h.step(), "1:10*");
  h.add(2, prompt2, 1);
  EXPECT_EQ(h.step(), "1:1* 2:3*");  // the shared system prompt is not recomputed
  EXPECT_EQ(h.scheduled(2)->num_computed_tokens, 8);
  EXPECT_EQ(h.scheduled(2)->block_table[0], h.scheduled(1)->block_table[0]);
  EXPECT_EQ(h.step(), "done:1=length,2=length");
  EXPECT_EQ(h.blocks.prefix_cache_stats().num_hits, 1);
  EXPECT_EQ(h.blocks.prefix_cache_stats().num_hit_tokens, 8);
}

TEST(SchedulerTrace, ForkSharesThePromptCopyOnWrite) {
  Harness h(kv_config(64, 4), sched_config(/*budget=*/100, /*max_num_seqs=*/8));
  SeqRequest r;
  r.id = 1;
  r.prompt = iota_tokens(6, 100);
  r.max_new_tokens = 3;
  ASSERT_TRUE(h.sched.add_request(r).ok());
  EXPECT_FALSE(h.sched.fork(1, 2).ok());  // not running yet
  const SchedulerOutput first = h.sched.schedule();
  ASSERT_EQ(first.seqs.size(), 1u);
  ASSERT_TRUE(first.seqs[0].sample);
  ASSERT_TRUE(h.sched.fork(1, 2).ok());  // n = 3: one sampled token per branch
  ASSERT_TRUE(h.sched.fork(1, 3).ok());
  EXPECT_FALSE(h.sched.fork(1, 3).ok());
  h.sched.append_token(1, 501);
  h.sched.append_token(2, 502);
  h.sched.append_token(3, 503);
  EXPECT_EQ(h.step(), "1:1* 2:1* 3:1*");
  const auto& b1 = h.scheduled(1)->block_table;
  const auto& b2 = h.scheduled(2)->block_table;
  const auto& b3 = h.scheduled(3)->block_table;
  EXPECT_EQ(b1[0], b2[0]);  // the full prompt block stays shared
  EXPECT_EQ(b1[0], b3[0]);
  // The partial prompt block: 1 and 2 write into copies, 3 (last holder) in place.
  ASSERT_EQ(h.last.block_copies.size(), 2u);
  EXPECT_EQ(h.last.block_copies[0].dst, b1[1]);
  EXPECT_EQ(h.last.block_copies[1].dst, b2[1]);
  EXPECT_EQ(h.last.block_copies[0].src, b3[1]);
  h.expect_trace({"1:1* 2:1* 3:1*", "done:1=length,2=length,3=length"});
}

TEST(Scheduler, RejectsRequestsThatCanNeverRun) {
  kv::BlockManager blocks(kv_config(4, 4));
  Scheduler sched(sched_config(100, 8), &blocks);
  SeqRequest r;
  r.id = 1;
  EXPECT_EQ(sched.add_request(r).code(), StatusCode::kInvalidArgument);  // empty prompt
  r.prompt = iota_tokens(10, 0);
  r.max_new_tokens = 7;  // 17 tokens > 16 slots
  EXPECT_EQ(sched.add_request(r).code(), StatusCode::kResourceExhausted);
  r.max_new_tokens = 6;
  EXPECT_TRUE(sched.add_request(r).ok());
  EXPECT_EQ(sched.add_request(r).code(), StatusCode::kInvalidArgument);  // duplicate id
}

TEST(Scheduler, WithoutChunkingAPromptRunsWhole) {
  SchedulerConfig c = sched_config(/*budget=*/8, /*max_num_seqs=*/8);
  c.enable_chunked_prefill = false;
  Harness h(kv_config(64, 4), c);
  h.add(1, iota_tokens(6, 100), 2);
  h.add(2, iota_tokens(6, 200), 2);
  h.expect_trace({"1:6*", "1:1* 2:6*", "2:1* done:1=length", "done:2=length"});
  SeqRequest r;
  r.id = 3;
  r.prompt = iota_tokens(9, 0);
  EXPECT_EQ(h.sched.add_request(r).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera::sched

// Scheduler: picks, each step, which sequences run and how many new tokens each computes,
// under a token budget and a sequence cap; running decodes first, then prefill chunks, then
// new admissions; preempts (recompute) when KV blocks run out. Pure logic over token counts
// and the BlockManager. Invariant: a sequence is in exactly one of running / waiting, and a
// running sequence's blocks hold exactly its num_computed_tokens between steps.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "tessera/core/status.h"
#include "tessera/kv/block_manager.h"
#include "tessera/sched/sequence.h"

namespace tessera::sched {

struct SchedulerConfig {
  int32_t max_num_batched_tokens = 2048;  // token budget of one step
  int32_t max_num_seqs = 64;              // running sequences at most
  bool enable_chunked_prefill = true;     // false: a prompt that fits the budget runs whole
};

struct ScheduledSeq {
  SeqId id = 0;
  int32_t num_computed_tokens = 0;  // KV already cached = position of the first new token
  int32_t num_new_tokens = 0;       // tokens [num_computed, num_computed + num_new) run now
  // The step reaches the sequence's last known token: its logits are sampled (a decode, or
  // the prefill chunk that completes the prompt). False for an intermediate prefill chunk.
  bool sample = false;
  std::vector<BlockId> block_table;  // [blocks_for(num_computed + num_new)]
};

struct FinishedSeq {
  SeqId id = 0;
  FinishReason reason = FinishReason::kLength;
};

struct SchedulerOutput {
  std::vector<ScheduledSeq> seqs;     // in scheduling order
  int32_t num_batched_tokens = 0;     // sum of num_new_tokens, <= max_num_batched_tokens
  std::vector<SeqId> preempted;       // sent back to waiting this step (KV freed, recomputed later)
  std::vector<FinishedSeq> finished;  // since the previous step; their blocks are free
  std::vector<kv::BlockCopy> block_copies;  // run in order before the step's forward pass
};

class Scheduler {
 public:
  // `blocks` is not owned and must outlive the scheduler.
  Scheduler(const SchedulerConfig& config, kv::BlockManager* blocks);

  // Queues a request. Fails on an empty prompt, a duplicate id, or a request whose prompt and
  // max_new_tokens could never fit in the KV pool even alone.
  Status add_request(SeqRequest request);

  // Plans one step. The caller runs it, then calls append_token for every `sample` entry.
  SchedulerOutput schedule();

  // The token sampled for `id` in the step just run; finishes it at max_new_tokens.
  void append_token(SeqId id, TokenId token);
  // Ends a sequence (stop token, client abort). Frees its blocks; reported by the next
  // schedule(). Returns false when `id` is unknown (already finished or never added).
  bool finish(SeqId id, FinishReason reason);
  bool abort(SeqId id) { return finish(id, FinishReason::kAborted); }
  // n > 1: `child` continues from `parent`'s tokens, sharing its KV blocks copy-on-write.
  // `parent` must be running with every token computed (right after its sampling step).
  Status fork(SeqId parent, SeqId child);

  const Sequence* find(SeqId id) const;
  const std::vector<SeqId>& running() const { return running_; }  // in scheduling order
  const std::vector<SeqId>& waiting() const { return waiting_; }  // in admission order
  bool has_unfinished() const { return !seqs_.empty(); }
  int64_t num_preemptions() const { return num_preemptions_; }

  // For tests: aborts (TESSERA_CHECK) on a broken invariant, the block manager's included.
  void check_invariants() const;

 private:
  struct Step;  // one schedule() call's working state

  void schedule_running(Step& step, bool decodes);
  void schedule_waiting(Step& step);
  bool allocate_or_preempt(Step& step, Sequence& seq, int32_t num_new_tokens);
  void preempt(Step& step, SeqId victim);
  SchedulerOutput commit(Step& step);
  void insert_sorted(std::vector<SeqId>& queue, SeqId id);
  Sequence& get(SeqId id);

  SchedulerConfig config_;
  kv::BlockManager* blocks_;
  std::unordered_map<SeqId, Sequence> seqs_;
  std::vector<SeqId> running_;  // sorted by runs_before
  std::vector<SeqId> waiting_;  // sorted by runs_before
  std::vector<FinishedSeq> finished_;
  int64_t next_arrival_ = 0;
  int64_t num_preemptions_ = 0;
};

}  // namespace tessera::sched

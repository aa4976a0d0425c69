// Scheduler implementation. schedule() reads top to bottom: running decodes, running prefill
// chunks, then admissions from the waiting queue; each policy is a named helper. Invariant: the
// step never exceeds its token budget or max_num_seqs, and a preempted sequence holds no blocks.
#include "tessera/sched/scheduler.h"

#include <algorithm>

#include "tessera/core/check.h"

namespace tessera::sched {

struct Scheduler::Step {
  struct Entry {
    SeqId id;
    int32_t num_new_tokens;
  };
  int32_t budget = 0;  // tokens left this step
  std::vector<Entry> scheduled;
  std::vector<SeqId> preempted;

  void add(SeqId id, int32_t num_new_tokens) {
    scheduled.push_back({id, num_new_tokens});
    budget -= num_new_tokens;
  }
  // Undoes add() for a sequence preempted later in the same step; no-op if not scheduled.
  void remove(SeqId id) {
    auto it = std::find_if(scheduled.begin(), scheduled.end(),
                           [id](const Entry& e) { return e.id == id; });
    if (it == scheduled.end()) return;
    budget += it->num_new_tokens;
    scheduled.erase(it);
  }
};

Scheduler::Scheduler(const SchedulerConfig& config, kv::BlockManager* blocks)
    : config_(config), blocks_(blocks) {
  TESSERA_CHECK(blocks != nullptr, "the scheduler needs a block manager");
  TESSERA_CHECK(config.max_num_batched_tokens > 0 && config.max_num_seqs > 0,
                "budget {} and max_num_seqs {} must be positive", config.max_num_batched_tokens,
                config.max_num_seqs);
}

Status Scheduler::add_request(SeqRequest request) {
  if (request.prompt.empty()) return invalid_argument("request {}: empty prompt", request.id);
  if (request.max_new_tokens < 1) {
    return invalid_argument("request {}: max_new_tokens must be >= 1, got {}", request.id,
                            request.max_new_tokens);
  }
  if (seqs_.count(request.id) != 0) return invalid_argument("duplicate request id {}", request.id);
  const int64_t max_len = static_cast<int64_t>(request.prompt.size()) + request.max_new_tokens;
  if (blocks_->blocks_for(max_len) > blocks_->num_blocks()) {
    return make_error(StatusCode::kResourceExhausted,
                      "request {}: {} prompt + {} new tokens need {} KV blocks but the cache has "
                      "{}; shorten the prompt or max_tokens",
                      request.id, request.prompt.size(), request.max_new_tokens,
                      blocks_->blocks_for(max_len), blocks_->num_blocks());
  }
  if (!config_.enable_chunked_prefill &&
      static_cast<int64_t>(request.prompt.size()) > config_.max_num_batched_tokens) {
    return invalid_argument("request {}: prompt of {} tokens exceeds the step budget {}",
                            request.id, request.prompt.size(), config_.max_num_batched_tokens);
  }
  Sequence seq;
  seq.id = request.id;
  seq.num_prompt_tokens = static_cast<int32_t>(request.prompt.size());
  seq.tokens = std::move(request.prompt);
  seq.max_new_tokens = request.max_new_tokens;
  seq.priority = request.priority;
  seq.cache_salt = request.cache_salt;
  seq.arrival = next_arrival_++;
  const SeqId id = seq.id;
  seqs_.emplace(id, std::move(seq));
  insert_sorted(waiting_, id);
  return Status::ok_status();
}

SchedulerOutput Scheduler::schedule() {
  Step step;
  step.budget = config_.max_num_batched_tokens;
  // 1. Streams already running get their next token first.
  schedule_running(step, /*decodes=*/true);
  // 2. Then running prompts continue, chunk by chunk, with what budget is left.
  schedule_running(step, /*decodes=*/false);
  // 3. New work only when nothing had to be preempted (the pool is not under pressure).
  if (step.preempted.empty()) schedule_waiting(step);
  return commit(step);
}

void Scheduler::schedule_running(Step& step, bool decodes) {
  const std::vector<SeqId> snapshot = running_;  // preemption edits running_
  for (SeqId id : snapshot) {
    if (step.budget == 0) return;
    Sequence& seq = get(id);
    if (seq.status != SeqStatus::kRunning) continue;  // preempted earlier in this step
    const int32_t uncomputed = seq.num_uncomputed_tokens();
    if (uncomputed == 0 || (uncomputed == 1) != decodes) continue;
    const int32_t num_new = std::min(uncomputed, step.budget);
    if (allocate_or_preempt(step, seq, num_new)) step.add(id, num_new);
  }
}

void Scheduler::schedule_waiting(Step& step) {
  while (!waiting_.empty() && step.budget > 0 &&
         static_cast<int32_t>(running_.size()) < config_.max_num_seqs) {
    Sequence& seq = get(waiting_.front());
    const int32_t num_cached = blocks_->lookup_prefix(seq.tokens, seq.cache_salt);
    const int32_t remaining = seq.num_tokens() - num_cached;
    const int32_t num_new = std::min(remaining, step.budget);
    // Without chunking a prompt waits for a step with room for all of it; only a recompute
    // longer than the whole budget (after preemption) is still split, or it could never run.
    if (!config_.enable_chunked_prefill && num_new < remaining &&
        remaining <= config_.max_num_batched_tokens) {
      return;
    }
    // Head-of-line: when the first waiting sequence does not fit, later ones wait too (FCFS).
    if (!blocks_->add_sequence(seq.id, seq.tokens, num_cached, num_new, seq.cache_salt)) return;
    seq.num_computed_tokens = num_cached;
    seq.status = SeqStatus::kRunning;
    waiting_.erase(waiting_.begin());
    insert_sorted(running_, seq.id);
    step.add(seq.id, num_new);
  }
}

// Preemption policy: the least important, newest running sequence goes back to waiting
// (possibly `seq` itself), until the allocation fits.
bool Scheduler::allocate_or_preempt(Step& step, Sequence& seq, int32_t num_new_tokens) {
  while (!blocks_->allocate_slots(seq.id, seq.tokens, num_new_tokens)) {
    const SeqId victim = running_.back();
    preempt(step, victim);
    if (victim == seq.id) return false;
  }
  return true;
}

void Scheduler::preempt(Step& step, SeqId victim) {
  Sequence& seq = get(victim);
  step.remove(victim);
  blocks_->free(victim);
  seq.num_computed_tokens = 0;
  seq.status = SeqStatus::kWaiting;
  ++seq.num_preemptions;
  ++num_preemptions_;
  std::erase(running_, victim);
  insert_sorted(waiting_, victim);
  step.preempted.push_back(victim);
}

SchedulerOutput Scheduler::commit(Step& step) {
  SchedulerOutput out;
  out.seqs.reserve(step.scheduled.size());
  for (const Step::Entry& e : step.scheduled) {
    Sequence& seq = get(e.id);
    ScheduledSeq s;
    s.id = e.id;
    s.num_computed_tokens = seq.num_computed_tokens;
    s.num_new_tokens = e.num_new_tokens;
    seq.num_computed_tokens += e.num_new_tokens;
    s.sample = seq.num_computed_tokens == seq.num_tokens();
    const auto table = blocks_->block_table(e.id);
    s.block_table.assign(table.begin(), table.end());
    out.num_batched_tokens += e.num_new_tokens;
    out.seqs.push_back(std::move(s));
  }
  out.preempted = std::move(step.preempted);
  out.finished.swap(finished_);
  out.block_copies = blocks_->take_block_copies();
  return out;
}

void Scheduler::append_token(SeqId id, TokenId token) {
  Sequence& seq = get(id);
  TESSERA_CHECK(seq.status == SeqStatus::kRunning && seq.num_uncomputed_tokens() == 0,
                "append_token for sequence {} that was not sampled this step", id);
  seq.tokens.push_back(token);
  if (seq.num_output_tokens() >= seq.max_new_tokens) finish(id, FinishReason::kLength);
}

bool Scheduler::finish(SeqId id, FinishReason reason) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return false;
  blocks_->free(id);
  std::erase(it->second.status == SeqStatus::kRunning ? running_ : waiting_, id);
  seqs_.erase(it);
  finished_.push_back({id, reason});
  return true;
}

Status Scheduler::fork(SeqId parent, SeqId child) {
  auto it = seqs_.find(parent);
  if (it == seqs_.end() || it->second.status != SeqStatus::kRunning ||
      it->second.num_uncomputed_tokens() != 0) {
    return invalid_argument("fork: sequence {} is not running with all tokens computed", parent);
  }
  if (seqs_.count(child) != 0) return invalid_argument("fork: duplicate id {}", child);
  if (static_cast<int32_t>(running_.size()) >= config_.max_num_seqs) {
    return make_error(StatusCode::kResourceExhausted, "fork: max_num_seqs {} reached",
                      config_.max_num_seqs);
  }
  Sequence seq = it->second;
  seq.id = child;
  seq.arrival = next_arrival_++;
  seq.num_preemptions = 0;
  blocks_->fork(parent, child);
  seqs_.emplace(child, std::move(seq));
  insert_sorted(running_, child);
  return Status::ok_status();
}

const Sequence* Scheduler::find(SeqId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? nullptr : &it->second;
}

Sequence& Scheduler::get(SeqId id) {
  auto it = seqs_.find(id);
  TESSERA_CHECK(it != seqs_.end(), "unknown sequence {}", id);
  return it->second;
}

void Scheduler::insert_sorted(std::vector<SeqId>& queue, SeqId id) {
  const Sequence& seq = get(id);
  auto pos = std::upper_bound(queue.begin(), queue.end(), id,
                              [&](SeqId, SeqId other) { return runs_before(seq, get(other)); });
  queue.insert(pos, id);
}

void Scheduler::check_invariants() const {
  TESSERA_CHECK_EQ(running_.size() + waiting_.size(), seqs_.size());
  TESSERA_CHECK_LE(static_cast<int32_t>(running_.size()), config_.max_num_seqs);
  for (const std::vector<SeqId>* queue : {&running_, &waiting_}) {
    const SeqStatus status = queue == &running_ ? SeqStatus::kRunning : SeqStatus::kWaiting;
    for (size_t i = 0; i < queue->size(); ++i) {
      const Sequence* seq = find((*queue)[i]);
      TESSERA_CHECK(seq != nullptr && seq->status == status, "sequence {} in the wrong queue",
                    (*queue)[i]);
      if (i > 0) TESSERA_CHECK(runs_before(*find((*queue)[i - 1]), *seq), "queue out of order");
      TESSERA_CHECK(seq->num_computed_tokens >= 0 && seq->num_computed_tokens <= seq->num_tokens(),
                    "sequence {}: {} computed of {}", seq->id, seq->num_computed_tokens,
                    seq->num_tokens());
      if (status == SeqStatus::kRunning) {
        TESSERA_CHECK_EQ(blocks_->num_slots(seq->id), seq->num_computed_tokens);
      } else {
        TESSERA_CHECK(!blocks_->has_sequence(seq->id) && seq->num_computed_tokens == 0,
                      "waiting sequence {} holds KV", seq->id);
      }
    }
  }
  blocks_->check_invariants();
}

}  // namespace tessera::sched

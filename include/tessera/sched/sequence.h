// A sequence as the scheduler sees it: token ids and counters, nothing of tensors or text.
// There are no prefill and decode phases: num_computed_tokens (tokens whose KV is cached)
// catches up with tokens.size(). Invariant: 0 <= num_computed_tokens <= tokens.size().
#pragma once

#include <cstdint>
#include <vector>

#include "tessera/kv/block_manager.h"

namespace tessera::sched {

using kv::BlockId;
using kv::SeqId;
using kv::TokenId;

enum class SeqStatus { kWaiting, kRunning };

enum class FinishReason {
  kLength,   // max_new_tokens sampled
  kStop,     // the engine saw a stop token or string
  kAborted,  // the client went away or cancelled
};

// What the engine submits.
struct SeqRequest {
  SeqId id = 0;
  std::vector<TokenId> prompt;
  int32_t max_new_tokens = 16;
  int32_t priority = 0;  // lower value = more important; equal values run first come first served
  uint64_t cache_salt = 0;  // separates prefix-cache namespaces (e.g. per tenant); 0 = shared
};

struct Sequence {
  SeqId id = 0;
  std::vector<TokenId> tokens;  // prompt, then sampled tokens
  int32_t num_prompt_tokens = 0;
  int32_t num_computed_tokens = 0;
  int32_t max_new_tokens = 0;
  int32_t priority = 0;
  uint64_t cache_salt = 0;
  int64_t arrival = 0;  // admission order, for FCFS among equal priorities
  int32_t num_preemptions = 0;
  SeqStatus status = SeqStatus::kWaiting;

  int32_t num_tokens() const { return static_cast<int32_t>(tokens.size()); }
  int32_t num_output_tokens() const { return num_tokens() - num_prompt_tokens; }
  int32_t num_uncomputed_tokens() const { return num_tokens() - num_computed_tokens; }
};

// Scheduling order: more important first, then older first.
inline bool runs_before(const Sequence& a, const Sequence& b) {
  return a.priority != b.priority ? a.priority < b.priority : a.arrival < b.arrival;
}

}  // namespace tessera::sched

// RequestState: one request's per-choice progress on the engine thread — its sampler, its
// incremental detokenizer and stop-string filter, and the delta gathered since the last output.
// Knows nothing of the scheduler: the engine tells it which token each choice sampled and
// whether the choice reached its length limit; it says whether that token ended the choice.
// Invariant: a choice finishes once; after that it takes no tokens and its delta is final.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "src/engine/stop_strings.h"
#include "tessera/engine/engine.h"
#include "tessera/kv/block_manager.h"
#include "tessera/sampling/grammar.h"
#include "tessera/sampling/sequence_sampler.h"
#include "tessera/text/detokenizer.h"

namespace tessera::engine {

struct ChoiceState {
  ChoiceState(int32_t index, const text::Tokenizer& tokenizer, const GenerateRequest& request);

  int32_t index = 0;
  kv::SeqId seq = -1;  // the scheduler's sequence; -1 while none (not forked yet, or finished)
  std::optional<sampling::SequenceSampler> sampler;  // set when the choice starts sampling
  std::optional<sampling::GrammarState> grammar;      // set when the request has a grammar
  text::IncrementalDetokenizer detok;
  StopStringFilter stops;
  int32_t num_generated = 0;
  std::optional<FinishReason> finish;
  CompletionDelta delta;  // news since the last output
  bool has_news = false;
};

class RequestState {
 public:
  RequestState(RequestId id, GenerateRequest request, OutputCallback on_output,
               const text::Tokenizer& tokenizer, std::span<const int32_t> eos_ids,
               int32_t max_new_tokens, uint64_t seed);

  RequestId id() const { return id_; }
  const GenerateRequest& request() const { return request_; }
  int32_t max_new_tokens() const { return max_new_tokens_; }
  std::vector<ChoiceState>& choices() { return choices_; }
  ChoiceState& choice(int32_t i) { return choices_[i]; }

  // Ids masked in choice `i`'s next draw: eos and stop ids while min_tokens are not out yet.
  std::span<const int32_t> masked_ids(int32_t i) const;
  // Records `token` for choice `i`; `length_reached` says it is the last one the length limit
  // allows; `grammar_done` that the choice's grammar is complete and takes nothing more (a
  // kStop). Returns the finish reason when this token ended the choice.
  std::optional<FinishReason> on_token(int32_t i, const sampling::TokenChoice& token,
                                       bool length_reached, bool grammar_done = false);
  // Ends choice `i` without a token (abort, error). No-op when already finished.
  void finish_choice(int32_t i, FinishReason reason);

  bool finished() const { return num_finished_ == static_cast<int32_t>(choices_.size()); }
  // The news since the last call (empty deltas when none), clearing it.
  RequestOutput take_output();
  bool has_news() const;

  bool forked = false;            // n > 1: choices 1..n-1 have started
  // Every draw of this request is Backend::sample's on the model's device backend (fixed at
  // admission; docs/engine.md "Device sampling").
  bool device_sampling = false;
  bool prompt_scheduled = false;  // its first step ran (num_cached_prompt_tokens is known)
  int32_t num_cached_prompt_tokens = 0;
  Status error;
  OutputCallback on_output;

 private:
  void close_choice(ChoiceState& c, FinishReason reason, bool flush_text);

  RequestId id_;
  GenerateRequest request_;
  int32_t max_new_tokens_;
  std::vector<int32_t> eos_ids_;     // sorted; empty when ignore_eos
  std::vector<int32_t> stop_ids_;    // sorted
  std::vector<int32_t> masked_ids_;  // eos + stop ids (min_tokens)
  std::vector<ChoiceState> choices_;
  int32_t num_finished_ = 0;
  int32_t num_generated_total_ = 0;
};

}  // namespace tessera::engine

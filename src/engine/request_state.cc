// One request's choices on the engine thread: token -> stop checks -> text -> delta.
// Invariant: a choice's released text is exactly the detokenized text of its tokens up to the
// stop (a stop token's own text is never shown; a stop string's only when asked).
#include "src/engine/request_state.h"

#include <algorithm>
#include <utility>

#include "tessera/core/check.h"

namespace tessera::engine {

const char* to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
    case FinishReason::kError:
      return "error";
  }
  return "error";
}

ChoiceState::ChoiceState(int32_t i, const text::Tokenizer& tokenizer,
                         const GenerateRequest& request)
    : index(i),
      detok(tokenizer, request.skip_special_tokens),
      stops(request.stop, request.include_stop_str_in_output) {
  delta.index = i;
  if (request.grammar) grammar.emplace(request.grammar);
}

RequestState::RequestState(RequestId id, GenerateRequest request, OutputCallback callback,
                           const text::Tokenizer& tokenizer, std::span<const int32_t> eos_ids,
                           int32_t max_new_tokens, uint64_t seed)
    : on_output(std::move(callback)),
      id_(id),
      request_(std::move(request)),
      max_new_tokens_(max_new_tokens) {
  if (!request_.ignore_eos) eos_ids_.assign(eos_ids.begin(), eos_ids.end());
  stop_ids_ = request_.stop_token_ids;
  std::sort(eos_ids_.begin(), eos_ids_.end());
  std::sort(stop_ids_.begin(), stop_ids_.end());
  masked_ids_ = eos_ids_;
  masked_ids_.insert(masked_ids_.end(), stop_ids_.begin(), stop_ids_.end());
  // NOTE: min_tokens also holds back eos under ignore_eos (it could not stop anyway), as vLLM.
  if (request_.ignore_eos) masked_ids_.insert(masked_ids_.end(), eos_ids.begin(), eos_ids.end());
  std::sort(masked_ids_.begin(), masked_ids_.end());
  masked_ids_.erase(std::unique(masked_ids_.begin(), masked_ids_.end()), masked_ids_.end());
  choices_.reserve(request_.n);
  for (int32_t i = 0; i < request_.n; ++i) choices_.emplace_back(i, tokenizer, request_);
  choices_[0].sampler.emplace(request_.sampling, seed, request_.prompt_tokens);
}

std::span<const int32_t> RequestState::masked_ids(int32_t i) const {
  if (choices_[i].num_generated >= request_.min_tokens) return {};
  return masked_ids_;
}

std::optional<FinishReason> RequestState::on_token(int32_t i, const sampling::TokenChoice& token,
                                                   bool length_reached, bool grammar_done) {
  ChoiceState& c = choices_[i];
  TESSERA_CHECK(!c.finish.has_value(), "token for finished choice {} of request {}", i, id_);
  c.sampler->accept(token.token);
  ++c.num_generated;
  ++num_generated_total_;
  c.has_news = true;
  c.delta.token_ids.push_back(token.token);
  if (request_.sampling.logprobs) {
    SampledLogprobs lp;
    lp.sampled = {token.token, token.logprob};
    lp.top.reserve(token.top.size());
    for (const auto& [id, logprob] : token.top) lp.top.push_back({id, logprob});
    c.delta.logprobs.push_back(std::move(lp));
  }
  const bool stop_id = std::binary_search(eos_ids_.begin(), eos_ids_.end(), token.token) ||
                       std::binary_search(stop_ids_.begin(), stop_ids_.end(), token.token);
  // Stop ids were masked while fewer than min_tokens were out (logit_bias cannot undo -inf).
  if (stop_id && c.num_generated > request_.min_tokens) {
    close_choice(c, FinishReason::kStop, /*flush_text=*/true);
    return FinishReason::kStop;
  }
  c.delta.text += c.stops.push(c.detok.push(token.token));
  if (c.stops.matched()) {
    c.delta.stop_reason = *c.stops.matched();
    close_choice(c, FinishReason::kStop, /*flush_text=*/false);
    return FinishReason::kStop;
  }
  if (grammar_done) {
    close_choice(c, FinishReason::kStop, /*flush_text=*/true);
    return FinishReason::kStop;
  }
  if (length_reached) {
    close_choice(c, FinishReason::kLength, /*flush_text=*/true);
    return c.finish;  // a stop string completed by the flush turns this into kStop
  }
  return std::nullopt;
}

void RequestState::finish_choice(int32_t i, FinishReason reason) {
  ChoiceState& c = choices_[i];
  if (c.finish) return;
  close_choice(c, reason, /*flush_text=*/false);
}

void RequestState::close_choice(ChoiceState& c, FinishReason reason, bool flush_text) {
  if (flush_text) {
    c.delta.text += c.stops.push(c.detok.finish());
    if (c.stops.matched()) {
      c.delta.stop_reason = *c.stops.matched();
      reason = FinishReason::kStop;
    } else {
      c.delta.text += c.stops.flush();
    }
  }
  c.finish = reason;
  c.delta.finish_reason = reason;
  c.has_news = true;
  c.seq = -1;
  ++num_finished_;
}

bool RequestState::has_news() const {
  return std::any_of(choices_.begin(), choices_.end(),
                     [](const ChoiceState& c) { return c.has_news; });
}

RequestOutput RequestState::take_output() {
  RequestOutput out;
  out.id = id_;
  out.finished = finished();
  out.num_prompt_tokens = static_cast<int32_t>(request_.prompt_tokens.size());
  out.num_cached_prompt_tokens = num_cached_prompt_tokens;
  out.num_generated_tokens = num_generated_total_;
  out.error = error;
  for (ChoiceState& c : choices_) {
    if (!c.has_news) continue;
    out.deltas.push_back(std::move(c.delta));
    c.delta = CompletionDelta{};
    c.delta.index = c.index;
    c.has_news = false;
  }
  return out;
}

}  // namespace tessera::engine

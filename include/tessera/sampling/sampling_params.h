// SamplingParams: everything a request says about how its next tokens are chosen, as plain data
// (the OpenAI fields plus vLLM's extras). Validation lives in sampling::validate so that the
// library API and the HTTP API reject the same values with the same words.
// Invariant: a default-constructed SamplingParams is valid and means "sample at temperature 1".
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "tessera/core/status.h"

namespace tessera::sampling {

struct SamplingParams {
  float temperature = 1.0f;          // 0: greedy (argmax, lowest id on ties)
  int32_t top_k = 0;                 // <= 0: no limit
  float top_p = 1.0f;                // (0, 1]
  float min_p = 0.0f;                // [0, 1]: drop tokens below min_p * p(top token)
  float repetition_penalty = 1.0f;   // > 0; 1: off (prompt + output tokens, HF/vLLM rule)
  float frequency_penalty = 0.0f;    // [-2, 2]; output tokens only (OpenAI rule)
  float presence_penalty = 0.0f;     // [-2, 2]; output tokens only
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, bias in [-100, 100])
  std::optional<uint64_t> seed;      // set: this request's draws depend on nothing else
  // Logprobs of the sampled token (and `top_logprobs` alternatives, 0..20) from the model's
  // raw distribution (log_softmax of the logits before any processing), as vLLM reports them.
  bool logprobs = false;
  int32_t top_logprobs = 0;
};

// A clear error naming the offending field (e.g. "top_p must be in (0, 1], got 1.5").
Status validate(const SamplingParams& params, int64_t vocab_size);

}  // namespace tessera::sampling

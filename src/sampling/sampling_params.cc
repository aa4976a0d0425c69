// validate(): the one place that says which SamplingParams are acceptable, with OpenAI-style
// messages naming the field and the value. Invariant: a default SamplingParams passes.
#include "tessera/sampling/sampling_params.h"

#include <cmath>

namespace tessera::sampling {

namespace {
constexpr int32_t kMaxTopLogprobs = 20;
constexpr float kMaxAbsLogitBias = 100.0f;
constexpr float kMaxAbsPenalty = 2.0f;
}  // namespace

Status validate(const SamplingParams& params, int64_t vocab_size) {
  // NOTE: every range test is written so that NaN fails it.
  if (!(params.temperature >= 0.0f && params.temperature <= 2.0f)) {
    return invalid_argument("temperature must be in [0, 2], got {}", params.temperature);
  }
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    return invalid_argument("top_p must be in (0, 1], got {}", params.top_p);
  }
  if (params.top_k < -1) {
    return invalid_argument("top_k must be -1 or 0 (no limit) or a positive count, got {}",
                            params.top_k);
  }
  if (!(params.min_p >= 0.0f && params.min_p <= 1.0f)) {
    return invalid_argument("min_p must be in [0, 1], got {}", params.min_p);
  }
  if (!(params.repetition_penalty > 0.0f && std::isfinite(params.repetition_penalty))) {
    return invalid_argument("repetition_penalty must be a finite number > 0, got {}",
                            params.repetition_penalty);
  }
  if (!(std::fabs(params.frequency_penalty) <= kMaxAbsPenalty)) {
    return invalid_argument("frequency_penalty must be in [-2, 2], got {}",
                            params.frequency_penalty);
  }
  if (!(std::fabs(params.presence_penalty) <= kMaxAbsPenalty)) {
    return invalid_argument("presence_penalty must be in [-2, 2], got {}",
                            params.presence_penalty);
  }
  for (const auto& [token, bias] : params.logit_bias) {
    if (token < 0 || token >= vocab_size) {
      return invalid_argument("logit_bias token id must be in [0, {}), got {}", vocab_size,
                              token);
    }
    if (!(std::fabs(bias) <= kMaxAbsLogitBias)) {
      return invalid_argument("logit_bias value for token {} must be in [-100, 100], got {}",
                              token, bias);
    }
  }
  if (params.top_logprobs < 0 || params.top_logprobs > kMaxTopLogprobs) {
    return invalid_argument("top_logprobs must be in [0, 20], got {}", params.top_logprobs);
  }
  if (params.top_logprobs > 0 && !params.logprobs) {
    return invalid_argument("top_logprobs requires logprobs to be true, got top_logprobs {}",
                            params.top_logprobs);
  }
  return Status::ok_status();
}

}  // namespace tessera::sampling

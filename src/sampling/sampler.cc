// Sampler (see sampler.h): one row at a time through a SequenceSampler with an empty prompt.
// Invariant: the caller's logits are never written.
#include "tessera/sampling/sampler.h"

#include "tessera/core/check.h"

namespace tessera::sampling {

int32_t argmax(std::span<const float> logits) {
  TESSERA_CHECK(!logits.empty(), "argmax of no logits");
  int32_t best = 0;
  float best_value = logits[0];
  for (size_t i = 1; i < logits.size(); ++i) {
    // NOTE: `!(best_value >= logits[i])` lets a number replace a NaN in front of it.
    if (logits[i] > best_value || (best_value != best_value && logits[i] == logits[i])) {
      best = static_cast<int32_t>(i);
      best_value = logits[i];
    }
  }
  return best;
}

Sampler::Sampler(const SamplingParams& params)
    : sequence_(params, params.seed.value_or(0), {}) {}

int32_t Sampler::sample(std::span<const float> logits) {
  row_.assign(logits.begin(), logits.end());
  const int32_t token = sequence_.sample(row_).token;
  sequence_.accept(token);
  return token;
}

}  // namespace tessera::sampling

// Sampler: picks the next token from one row of logits — greedy, or temperature with optional
// top-k and top-p (nucleus) filtering, from a seeded generator so runs are reproducible.
// Invariant: sample() returns an id in [0, logits.size()); with temperature <= 0 it is the
// argmax (lowest id on ties) and consumes no randomness.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace tessera::sampling {

struct SamplingParams {
  float temperature = 1.0f;  // <= 0: greedy
  int32_t top_k = 0;         // <= 0: no limit
  float top_p = 1.0f;        // >= 1: no limit
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  int32_t sample(std::span<const float> logits);  // logits [vocab]
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;  // (logit or prob, id) scratch
};

int32_t argmax(std::span<const float> logits);

}  // namespace tessera::sampling

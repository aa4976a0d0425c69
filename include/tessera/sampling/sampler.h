// Sampler: the one-row convenience sampler used by `tessera generate` and the benches — a thin
// wrapper over SequenceSampler that copies each row (so the caller's logits stay intact) and
// records every sampled token so output penalties apply.
// Invariant: sample() returns an id in [0, logits.size()); with temperature 0 it is the argmax
// (lowest id on ties) and consumes no randomness.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tessera/sampling/sampling_params.h"
#include "tessera/sampling/sequence_sampler.h"

namespace tessera::sampling {

class Sampler {
 public:
  // An unset params.seed means seed 0 (the CLI's reproducible default).
  explicit Sampler(const SamplingParams& params);
  int32_t sample(std::span<const float> logits);  // logits [vocab]
  const SamplingParams& params() const { return sequence_.params(); }

 private:
  SequenceSampler sequence_;
  std::vector<float> row_;  // [vocab] scratch copy of the row
};

// Index of the largest value, lowest index on ties (NaN never wins over a number).
int32_t argmax(std::span<const float> logits);

}  // namespace tessera::sampling

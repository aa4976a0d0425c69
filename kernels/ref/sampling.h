// Reference (scalar, obviously-correct) token sampling for one logits row: the spec of
// Backend::sample. Sorts the row, then applies temperature, top-k, top-p, min-p and one
// inverse-CDF draw with u = philox_uniform(seed, step) (kernels/cuda/sampling/sampling_math.h).
// Invariant: the order is descending logit, ties to the lower id, NaN last; weights are
// det_exp(x / T - x_max / T) (bit-identical on the device); every sum runs in that order in f64.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/cuda/sampling/sampling_math.h"

namespace tessera::kernels::ref {

using sampling::SampleRowSpec;

// One kept token of a row's final distribution.
struct KeptToken {
  int32_t id = 0;
  double weight = 0.0;  // det_exp weight (the top token's is 1)
  double prob = 0.0;    // weight / total kept weight
};

// Greedy choice: the largest logit, lowest id on ties; NaN never wins (an all-NaN row gives 0).
//   logits f32 [vocab]
int32_t argmax_row(const float* logits, int64_t vocab);

// Whether this row is sampled greedily: temperature <= 0, or a degenerate row (no finite
// maximum: +inf present, every logit -inf/NaN, or x_max / T overflows).
bool greedy_row(const float* logits, int64_t vocab, const SampleRowSpec& spec);

// The distribution a non-greedy row draws from, in draw order (descending logit, ties to the
// lower id). Zero-weight tokens stay in the list when kept (they are never drawn). Empty for a
// greedy row.   logits f32 [vocab]
std::vector<KeptToken> sample_kept(const float* logits, int64_t vocab, const SampleRowSpec& spec);

// The sampled id: argmax_row for greedy rows; else the first kept token (draw order) whose
// cumulative weight exceeds u * total, u = philox_uniform(seed, step); when rounding leaves none,
// the last kept token of positive weight.   logits f32 [vocab]
int32_t sample_row(const float* logits, int64_t vocab, const SampleRowSpec& spec);

// Distance from u to the nearest CDF boundary of `kept` (cumulative probs, sequential f64);
// tests use it to excuse a device mismatch where the draw is within rounding of a boundary.
double cdf_boundary_distance(const std::vector<KeptToken>& kept, double u);

}  // namespace tessera::kernels::ref

// Greedy / temperature / top-k / top-p sampling over one logits row (see sampler.h).
// Invariant: filters keep at least one candidate, so a distribution always remains.
#include "tessera/sampling/sampler.h"

#include <algorithm>
#include <cmath>

#include "tessera/core/check.h"

namespace tessera::sampling {

int32_t argmax(std::span<const float> logits) {
  TESSERA_CHECK(!logits.empty(), "argmax of no logits");
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

int32_t Sampler::sample(std::span<const float> logits) {
  if (params_.temperature <= 0.0f) return argmax(logits);
  const int64_t vocab = static_cast<int64_t>(logits.size());
  candidates_.resize(vocab);
  for (int64_t i = 0; i < vocab; ++i) {
    candidates_[i] = {logits[i], static_cast<int32_t>(i)};
  }
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  int64_t keep = vocab;
  if (params_.top_k > 0 && params_.top_k < vocab) {
    keep = params_.top_k;
    std::partial_sort(candidates_.begin(), candidates_.begin() + keep, candidates_.end(), by_logit);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  candidates_.resize(keep);
  // Softmax of logit / temperature over the kept candidates (sorted, so [0] is the max).
  const float inv_t = 1.0f / params_.temperature;
  const float max_logit = candidates_[0].first;
  double total = 0.0;
  for (auto& c : candidates_) {
    c.first = std::exp((c.first - max_logit) * inv_t);
    total += c.first;
  }
  if (params_.top_p < 1.0f) {
    double cumulative = 0.0;
    int64_t n = 0;
    while (n < keep) {
      cumulative += candidates_[n].first / total;
      ++n;
      if (cumulative >= params_.top_p) break;
    }
    candidates_.resize(n);
    total = 0.0;
    for (const auto& c : candidates_) total += c.first;
  }
  const double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  double acc = 0.0;
  for (const auto& c : candidates_) {
    acc += c.first;
    if (r < acc) return c.second;
  }
  return candidates_.back().second;
}

}  // namespace tessera::sampling

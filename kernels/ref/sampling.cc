// Reference token sampling (see sampling.h): a full sort of the row, then each filter as a
// plain loop over the sorted order. Slow on purpose; the CUDA kernel must agree with it.
#include "kernels/ref/sampling.h"

#include <algorithm>
#include <cmath>

namespace tessera::kernels::ref {
namespace {

using sampling::dadd;
using sampling::dmul;
using sampling::fdiv;
using sampling::logit_weight;
using sampling::order_key;

// Row ids in draw order: key descending, id ascending (sorted as one u64: ~key, then id).
std::vector<int32_t> sorted_order(const float* logits, int64_t vocab) {
  std::vector<uint64_t> packed(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) {
    packed[i] = (static_cast<uint64_t>(~order_key(logits[i])) << 32) | static_cast<uint64_t>(i);
  }
  std::sort(packed.begin(), packed.end());
  std::vector<int32_t> order(packed.size());
  for (size_t j = 0; j < packed.size(); ++j) order[j] = static_cast<int32_t>(packed[j]);
  return order;
}

}  // namespace

int32_t argmax_row(const float* logits, int64_t vocab) {
  int64_t best = -1;
  for (int64_t i = 0; i < vocab; ++i) {
    if (std::isnan(logits[i])) continue;
    if (best < 0 || logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best < 0 ? 0 : best);
}

bool greedy_row(const float* logits, int64_t vocab, const SampleRowSpec& spec) {
  if (!(spec.temperature > 0.0f)) return true;
  const float x_max = logits[argmax_row(logits, vocab)];
  if (!std::isfinite(x_max)) return true;
  return !std::isfinite(fdiv(x_max, spec.temperature));
}

std::vector<KeptToken> sample_kept(const float* logits, int64_t vocab, const SampleRowSpec& spec) {
  std::vector<KeptToken> kept;
  if (greedy_row(logits, vocab, spec)) return kept;
  const std::vector<int32_t> order = sorted_order(logits, vocab);
  const float s_max = fdiv(logits[order[0]], spec.temperature);
  std::vector<double> w(order.size());
  for (size_t j = 0; j < order.size(); ++j) {
    w[j] = logit_weight(logits[order[j]], spec.temperature, s_max);
  }
  // top_k: the first k of the order.
  size_t n = order.size();
  if (spec.top_k > 0 && static_cast<int64_t>(spec.top_k) < vocab) n = spec.top_k;
  // top_p: keep j while the mass before it is < top_p * (mass of the top-k set).
  if (spec.top_p < 1.0f) {
    double total_k = 0.0;
    for (size_t j = 0; j < n; ++j) total_k = dadd(total_k, w[j]);
    const double target = dmul(static_cast<double>(spec.top_p), total_k);
    double before = 0.0;
    size_t j = 0;
    while (j < n && before < target) before = dadd(before, w[j++]);
    n = std::max<size_t>(j, 1);
  }
  // min_p: drop weights below min_p (the top token's weight is 1).
  double total = 0.0;
  for (size_t j = 0; j < n; ++j) {
    if (spec.min_p > 0.0f && w[j] < static_cast<double>(spec.min_p)) continue;
    kept.push_back({order[j], w[j], 0.0});
    total = dadd(total, w[j]);
  }
  for (KeptToken& k : kept) k.prob = k.weight / total;
  return kept;
}

int32_t sample_row(const float* logits, int64_t vocab, const SampleRowSpec& spec) {
  if (greedy_row(logits, vocab, spec)) return argmax_row(logits, vocab);
  const std::vector<KeptToken> kept = sample_kept(logits, vocab, spec);
  double total = 0.0;
  for (const KeptToken& k : kept) total = dadd(total, k.weight);
  const double target = dmul(sampling::philox_uniform(spec.seed, spec.step), total);
  double cum = 0.0;
  int32_t last_positive = kept.front().id;
  for (const KeptToken& k : kept) {
    cum = dadd(cum, k.weight);
    if (k.weight > 0.0) last_positive = k.id;
    if (cum > target) return k.id;
  }
  return last_positive;
}

double cdf_boundary_distance(const std::vector<KeptToken>& kept, double u) {
  double total = 0.0;
  for (const KeptToken& k : kept) total += k.weight;
  double cum = 0.0, best = u;  // the boundary at 0
  for (const KeptToken& k : kept) {
    cum += k.weight;
    best = std::min(best, std::abs(u - cum / total));
  }
  return best;
}

}  // namespace tessera::kernels::ref

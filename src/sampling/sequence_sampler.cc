// SequenceSampler (see sequence_sampler.h). One step: raw logprobs -> logit_bias -> mask ->
// repetition penalty -> frequency / presence -> greedy argmax, or temperature -> top_k -> top_p
// -> min_p -> one draw. docs/sampling.md states each rule and where vLLM's order differs.
// Invariant: every sample() call is one step of the stream; its draw is u = philox_uniform(seed,
// step) (Backend::sample's), inverse CDF over descending logit order (ties to the lower id).
#include "tessera/sampling/sequence_sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "kernels/cuda/sampling/sampling_math.h"
#include "tessera/core/check.h"
#include "tessera/sampling/sampler.h"

namespace tessera::sampling {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// NOTE: like vLLM, temperatures below 1e-5 are greedy: dividing by them overflows f32 logits.
constexpr float kGreedyBelowTemperature = 1e-5f;

// Best first: larger value, then lower id. A strict total order over distinct ids.
bool better(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

// Draw order (Backend::sample's): larger raw logit first, then lower id.
struct ByLogit {
  std::span<const float> logits;
  bool operator()(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) const {
    const float x = logits[a.second], y = logits[b.second];
    return x > y || (x == y && a.second < b.second);
  }
};

// Weights lie in (0, 1]; for positive floats the bit pattern is monotone, so bins of 1/32 octave
// come from the bits (bin 0 holds the largest weights).
constexpr int kBinShift = 18;
constexpr uint32_t kOneBits = 0x3f800000u;  // bit_cast<uint32_t>(1.0f)
inline uint32_t bin_of(float w) { return (kOneBits - std::bit_cast<uint32_t>(w)) >> kBinShift; }
constexpr size_t kNumBins = (kOneBits >> kBinShift) + 1;

// The first candidate in draw order whose cumulative weight exceeds `target`, without sorting
// the candidates: whole bins are summed and only the bin holding the crossing is sorted (into
// `bin`). `for_each(f)` calls f(weight, id) for every candidate; zero weights never win. When
// rounding leaves no crossing, the last candidate of positive weight; -1 when there is none.
// `bin_mass` is the candidates' histogram when `have_histogram`, else it is built here.
template <typename ForEach>
int32_t draw_by_bins(std::span<const float> logits, double target, ForEach for_each,
                     bool have_histogram, std::vector<double>& bin_mass,
                     std::vector<std::pair<float, int32_t>>& bin) {
  if (!have_histogram) {
    bin_mass.assign(kNumBins, 0.0);
    for_each([&](float w, int32_t) {
      if (w > 0.0f) bin_mass[bin_of(w)] += w;
    });
  }
  double before = 0.0;
  uint32_t boundary = 0;
  for (; boundary < kNumBins; ++boundary) {
    if (before + bin_mass[boundary] > target) break;
    before += bin_mass[boundary];
  }
  const ByLogit order{logits};
  bin.clear();
  if (boundary == kNumBins) {
    // NOTE: reached only when u * total rounds up to total: the last token with weight wins.
    std::pair<float, int32_t> last{0.0f, -1};
    for_each([&](float w, int32_t id) {
      if (w > 0.0f && (last.second < 0 || order(last, {w, id}))) last = {w, id};
    });
    return last.second;
  }
  for_each([&](float w, int32_t id) {
    if (w > 0.0f && bin_of(w) == boundary) bin.emplace_back(w, id);
  });
  std::sort(bin.begin(), bin.end(), order);
  double acc = before;
  for (const auto& c : bin) {
    acc += c.first;
    if (target < acc) return c.second;
  }
  return bin.back().second;  // the bin's sum and the running sum rounded apart
}

// exp(x) for x <= 0; exactly 0 below -87 (where f32 turns denormal) and for NaN / -inf.
// NOTE: a hand-written polynomial exp did not vectorise here (no -march) and was no faster.
inline float exp_nonpositive(float x) { return x > -87.0f ? std::exp(x) : 0.0f; }

// Sum in four interleaved double lanes (a fixed order, so the same on every run).
double sum_weights(std::span<const float> w) {
  double lane[4] = {0.0, 0.0, 0.0, 0.0};
  size_t i = 0;
  for (; i + 4 <= w.size(); i += 4) {
    for (int j = 0; j < 4; ++j) lane[j] += w[i + j];
  }
  for (; i < w.size(); ++i) lane[0] += w[i];
  return (lane[0] + lane[1]) + (lane[2] + lane[3]);
}

float& at(std::span<float> logits, int32_t id) {
  TESSERA_CHECK(id >= 0 && static_cast<size_t>(id) < logits.size(),
                "token id {} outside the vocab of {}", id, logits.size());
  return logits[id];
}

}  // namespace

SequenceSampler::SequenceSampler(const SamplingParams& params, uint64_t seed,
                                 std::span<const int32_t> prompt)
    : params_(params), seed_(params.seed.value_or(seed)) {
  if (params_.repetition_penalty != 1.0f) {
    prompt_tokens_.assign(prompt.begin(), prompt.end());
    std::sort(prompt_tokens_.begin(), prompt_tokens_.end());
    prompt_tokens_.erase(std::unique(prompt_tokens_.begin(), prompt_tokens_.end()),
                         prompt_tokens_.end());
  }
}

bool SequenceSampler::greedy() const { return params_.temperature < kGreedyBelowTemperature; }

void SequenceSampler::accept(int32_t token) { ++output_counts_[token]; }

SequenceSampler SequenceSampler::fork(int32_t index) const {
  SequenceSampler copy(params_, seed_, {});
  copy.seed_ = seed_ + static_cast<uint64_t>(index);  // its own stream, from step 0
  copy.prompt_tokens_ = prompt_tokens_;
  copy.output_counts_ = output_counts_;
  return copy;
}

std::vector<std::pair<int32_t, double>> SequenceSampler::last_distribution() const {
  std::vector<std::pair<int32_t, double>> out;
  if (dense_) {
    for (size_t i = 0; i < weights_.size(); ++i) {
      if (weights_[i] > 0.0f) out.emplace_back(static_cast<int32_t>(i), weights_[i] / kept_total_);
    }
    return out;
  }
  out.reserve(kept_);
  for (size_t i = 0; i < kept_; ++i) {
    out.emplace_back(scratch_[i].second, scratch_[i].first / kept_total_);
  }
  return out;
}

TokenChoice SequenceSampler::sample(std::span<float> logits, std::span<const int32_t> masked,
                                    std::span<const uint8_t> allowed) {
  TESSERA_CHECK(!logits.empty(), "sample() of an empty logits row");
  const uint64_t step = step_++;
  TokenChoice choice;
  double log_norm = 0.0;
  if (params_.logprobs) {
    log_norm = raw_log_normalizer(logits);
    save_raw(logits, masked);
  }
  if (!allowed.empty()) {
    // The drawn id is always allowed, so its raw logit (for logprobs) is never edited here.
    for (size_t i = 0; i < logits.size(); ++i) {
      if (i >= allowed.size() || allowed[i] == 0) logits[i] = kNegInf;
    }
  }
  apply_bias_mask_penalties(logits, masked);
  if (greedy()) {
    dense_ = false;
    kept_ = 0;
    kept_total_ = 0.0;
    choice.token = argmax(logits);
  } else {
    choice.token = draw(logits, kernels::sampling::philox_uniform(seed_, step));
  }
  if (params_.logprobs) {
    choice.logprob = static_cast<float>(raw_logit(logits, choice.token) - log_norm);
    choice.top.reserve(top_scratch_.size());
    for (const auto& [value, id] : top_scratch_) {
      choice.top.emplace_back(id, static_cast<float>(value - log_norm));
    }
  }
  return choice;
}

double SequenceSampler::raw_log_normalizer(std::span<const float> logits) {
  const size_t num_top = static_cast<size_t>(std::max(params_.top_logprobs, 0));
  top_scratch_.clear();
  float max_logit = kNegInf;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float v = logits[i];
    if (!(v > kNegInf)) continue;  // -inf and NaN
    max_logit = std::max(max_logit, v);
    const Candidate c{v, static_cast<int32_t>(i)};
    if (num_top > 0 && (top_scratch_.size() < num_top || better(c, top_scratch_.back()))) {
      top_scratch_.insert(std::upper_bound(top_scratch_.begin(), top_scratch_.end(), c, better),
                          c);
      if (top_scratch_.size() > num_top) top_scratch_.pop_back();
    }
  }
  if (!(max_logit > kNegInf)) return 0.0;  // nothing finite: every logprob is -inf
  weights_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) weights_[i] = exp_nonpositive(logits[i] - max_logit);
  return static_cast<double>(max_logit) + std::log(sum_weights(weights_));
}

void SequenceSampler::save_raw(std::span<float> logits, std::span<const int32_t> masked) {
  saved_raw_.clear();
  auto save = [&](int32_t id) { saved_raw_.emplace_back(id, at(logits, id)); };
  for (const auto& [id, bias] : params_.logit_bias) save(id);
  for (const int32_t id : masked) save(id);
  for (const int32_t id : prompt_tokens_) save(id);
  if (params_.repetition_penalty != 1.0f || params_.frequency_penalty != 0.0f ||
      params_.presence_penalty != 0.0f) {
    for (const auto& [id, count] : output_counts_) save(id);
  }
}

float SequenceSampler::raw_logit(std::span<const float> logits, int32_t token) const {
  for (const auto& [id, value] : saved_raw_) {
    if (id == token) return value;
  }
  return logits[token];
}

void SequenceSampler::apply_bias_mask_penalties(std::span<float> logits,
                                                std::span<const int32_t> masked) const {
  for (const auto& [id, bias] : params_.logit_bias) at(logits, id) += bias;
  for (const int32_t id : masked) at(logits, id) = kNegInf;
  const float penalty = params_.repetition_penalty;
  if (penalty != 1.0f) {
    auto repeat = [penalty](float& x) { x = x > 0.0f ? x / penalty : x * penalty; };
    for (const int32_t id : prompt_tokens_) repeat(at(logits, id));
    for (const auto& [id, count] : output_counts_) {
      if (!std::binary_search(prompt_tokens_.begin(), prompt_tokens_.end(), id)) {
        repeat(at(logits, id));
      }
    }
  }
  const float frequency = params_.frequency_penalty;
  const float presence = params_.presence_penalty;
  if (frequency != 0.0f || presence != 0.0f) {
    for (const auto& [id, count] : output_counts_) {
      at(logits, id) -= static_cast<float>(count) * frequency + presence;
    }
  }
}

void SequenceSampler::select_top_k(std::span<const float> logits, size_t k) {
  // One pass with a rising bar: a logit enters only if it beats the k-th best so far; the
  // buffer is cut back to k whenever it doubles. Later ids lose ties, so `>` is exact.
  scratch_.clear();
  const size_t cap = 2 * k;
  float bar = kNegInf;  // also keeps -inf and NaN out
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!(logits[i] > bar)) continue;
    scratch_.emplace_back(logits[i], static_cast<int32_t>(i));
    if (scratch_.size() == cap) {
      std::nth_element(scratch_.begin(), scratch_.begin() + (k - 1), scratch_.end(), better);
      scratch_.resize(k);
      bar = scratch_[k - 1].first;
    }
  }
  if (scratch_.size() > k) {
    std::nth_element(scratch_.begin(), scratch_.begin() + (k - 1), scratch_.end(), better);
    scratch_.resize(k);
  }
  std::sort(scratch_.begin(), scratch_.end(), better);
}

size_t SequenceSampler::top_p_cut(std::span<const float> logits, double target_mass) {
  // Whole bins above the boundary bin are kept unsorted (id order); only the boundary bin is
  // sorted, in draw order. Worst case (one bin holds everything) is one full sort.
  bin_mass_.assign(kNumBins, 0.0);
  for (const auto& c : scratch_) bin_mass_[bin_of(c.first)] += c.first;
  double before = 0.0;
  uint32_t boundary = 0;
  for (; boundary < bin_mass_.size(); ++boundary) {
    if (before + bin_mass_[boundary] >= target_mass) break;
    before += bin_mass_[boundary];
  }
  if (boundary == bin_mass_.size()) return scratch_.size();  // rounding: the mass never got there
  ordered_.clear();
  for (const auto& c : scratch_) {
    if (bin_of(c.first) < boundary) ordered_.push_back(c);
  }
  const size_t above = ordered_.size();
  for (const auto& c : scratch_) {
    if (bin_of(c.first) == boundary) ordered_.push_back(c);
  }
  std::sort(ordered_.begin() + above, ordered_.end(), ByLogit{logits});
  size_t kept = above;
  double mass = before;
  while (kept < ordered_.size() && mass < target_mass) mass += ordered_[kept++].first;
  scratch_.swap(ordered_);
  return kept;
}

int32_t SequenceSampler::draw(std::span<const float> logits, double u) {
  dense_ = false;
  const float inv_temperature = 1.0f / params_.temperature;
  const bool use_top_k = params_.top_k > 0 && static_cast<size_t>(params_.top_k) < logits.size();
  const bool use_top_p = params_.top_p < 1.0f;
  const bool use_min_p = params_.min_p > 0.0f;
  // NOTE: the top token's weight is exp(0) = 1, so min-p's "p < min_p * p_max" is "w < min_p".
  const float min_p = params_.min_p;
  scratch_.reserve(logits.size());
  size_t kept = 0;
  bool sorted = false;          // scratch_[0, kept) already in draw order
  bool have_histogram = false;  // bin_mass_ is scratch_[0, kept)'s histogram
  if (use_top_k) {
    select_top_k(logits, static_cast<size_t>(params_.top_k));  // draw order from here on
    // NOTE: a +inf logit makes the row degenerate: greedy, as Backend::sample.
    if (scratch_.empty() || std::isinf(scratch_[0].first)) return no_candidates(logits);
    sorted = true;
    const float max_logit = scratch_[0].first;
    double total = 0.0;
    for (auto& c : scratch_) {
      c.first = exp_nonpositive((c.first - max_logit) * inv_temperature);
      total += c.first;
    }
    kept = scratch_.size();
    if (use_top_p) {
      double mass = 0.0;
      for (kept = 0; kept < scratch_.size() && mass < params_.top_p * total; ++kept) {
        mass += scratch_[kept].first;
      }
    }
    if (use_min_p) {
      while (kept > 1 && scratch_[kept - 1].first < min_p) --kept;
    }
  } else {
    float max_logit = kNegInf;
    for (const float v : logits) max_logit = v > max_logit ? v : max_logit;
    if (!(max_logit > kNegInf) || std::isinf(max_logit)) return no_candidates(logits);
    scratch_.clear();
    if (use_min_p && !use_top_p) {
      // Min-p alone: a cheap cut in logit space first (with slack), then the exact weight cut;
      // the draw's histogram is built on the way.
      const float floor = std::log(min_p) - 1e-3f;
      bin_mass_.assign(kNumBins, 0.0);
      for (size_t i = 0; i < logits.size(); ++i) {
        const float d = (logits[i] - max_logit) * inv_temperature;
        if (!(d >= floor)) continue;  // also -inf and NaN
        const float w = exp_nonpositive(d);
        if (w >= min_p) {
          scratch_.emplace_back(w, static_cast<int32_t>(i));
          bin_mass_[bin_of(w)] += w;
        }
      }
      kept = scratch_.size();
      have_histogram = true;
    } else if (!use_top_p) {
      // No filter: draw straight from weights_ (id-indexed), every id of positive weight; the
      // histogram is built with the weights.
      dense_ = true;
      weights_.resize(logits.size());
      bin_mass_.assign(kNumBins, 0.0);
      for (size_t i = 0; i < logits.size(); ++i) {
        const float w = exp_nonpositive((logits[i] - max_logit) * inv_temperature);
        weights_[i] = w;
        if (w > 0.0f) bin_mass_[bin_of(w)] += w;
      }
      double total = 0.0;
      for (const double m : bin_mass_) total += m;
      kept_total_ = total;
      const int32_t id = draw_by_bins(
          logits, u * total,
          [&](auto f) {
            for (size_t i = 0; i < weights_.size(); ++i) f(weights_[i], static_cast<int32_t>(i));
          },
          /*have_histogram=*/true, bin_mass_, ordered_);
      return id >= 0 ? id : argmax(logits);
    } else {
      weights_.resize(logits.size());
      for (size_t i = 0; i < logits.size(); ++i) {
        weights_[i] = exp_nonpositive((logits[i] - max_logit) * inv_temperature);
      }
      const double total = sum_weights(weights_);
      // Top-p's mass counts every token; min-p then only shrinks the set it sorts.
      const float floor = use_min_p ? min_p : std::numeric_limits<float>::min();
      for (size_t i = 0; i < weights_.size(); ++i) {
        if (weights_[i] >= floor) scratch_.emplace_back(weights_[i], static_cast<int32_t>(i));
      }
      kept = top_p_cut(logits, params_.top_p * total);
    }
  }
  if (kept == 0) return no_candidates(logits);
  kept_ = kept;
  double total = 0.0;
  for (size_t i = 0; i < kept; ++i) total += scratch_[i].first;
  kept_total_ = total;
  const double target = u * total;
  if (!sorted) {
    const int32_t id = draw_by_bins(
        logits, target,
        [&](auto f) {
          for (size_t i = 0; i < kept; ++i) f(scratch_[i].first, scratch_[i].second);
        },
        have_histogram, bin_mass_, ordered_);
    return id >= 0 ? id : argmax(logits);
  }
  double acc = 0.0;
  for (size_t i = 0; i < kept; ++i) {
    acc += scratch_[i].first;
    if (target < acc) return scratch_[i].second;
  }
  // NOTE: reached only when u * total rounds up to total: the last token with weight wins.
  for (size_t i = kept; i-- > 0;) {
    if (scratch_[i].first > 0.0f) return scratch_[i].second;
  }
  return scratch_[0].second;
}

int32_t SequenceSampler::no_candidates(std::span<const float> logits) {
  dense_ = false;
  kept_ = 0;
  kept_total_ = 0.0;
  return argmax(logits);
}

}  // namespace tessera::sampling

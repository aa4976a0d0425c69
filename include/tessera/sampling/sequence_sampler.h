// SequenceSampler: one completion's token choice, step after step — logits processing
// (logit_bias, repetition / frequency / presence penalties, temperature, top-k, top-p, min-p),
// one draw u = philox_uniform(seed, step) (Backend::sample's stream), and logprobs from the raw
// distribution. Invariant: draw `step` depends only on (seed, step, its logits row), never on
// other sequences in the batch; temperature 0 is argmax (lowest id on ties) and uses no draw.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tessera/sampling/sampling_params.h"

namespace tessera::sampling {

struct TokenChoice {
  int32_t token = 0;
  float logprob = 0.0f;  // log_softmax(raw logits)[token]; filled when params.logprobs
  std::vector<std::pair<int32_t, float>> top;  // [top_logprobs] (id, logprob), best first
};

class SequenceSampler {
 public:
  // `params` must be valid (sampling::validate). `seed` is used when params.seed is unset (the
  // engine draws one per request). `prompt` feeds the repetition penalty.
  SequenceSampler(const SamplingParams& params, uint64_t seed, std::span<const int32_t> prompt);

  // Picks the next token from `logits` (f32 [vocab], overwritten as scratch). Ids in `masked`
  // get -inf first (min_tokens holding back eos / stop ids); so do ids with allowed[id] == 0
  // when `allowed` is given ([vocab], a grammar's token mask). Logprobs stay those of the raw
  // row. Call accept() with the result.
  TokenChoice sample(std::span<float> logits, std::span<const int32_t> masked = {},
                     std::span<const uint8_t> allowed = {});
  // Records a generated token (penalties count it from now on).
  void accept(int32_t token);

  // The step the next sample() draws with (its count of sample() calls so far: the output
  // index in the engine). A token drawn elsewhere from the same stream (Backend::sample with
  // this seed and step()) calls skip_step() in place of sample(), then accept().
  uint64_t step() const { return step_; }
  void skip_step() { ++step_; }

  // n > 1: a copy for choice `index` with its own stream (seed + index, from step 0, so choice i
  // of a seeded request is reproducible), sharing the prompt and outputs so far.
  SequenceSampler fork(int32_t index) const;

  const SamplingParams& params() const { return params_; }
  uint64_t seed() const { return seed_; }  // the stream's seed (params.seed or the fallback)
  // Whether sample() is argmax (temperature below 1e-5, as vLLM).
  bool greedy() const;

  // The distribution the last sample() drew from: (id, probability), kept tokens only, in no
  // particular order; empty after a greedy step. For tests and debugging (builds a fresh vector).
  std::vector<std::pair<int32_t, double>> last_distribution() const;

 private:
  using Candidate = std::pair<float, int32_t>;  // (processed logit, then weight; token id)

  double raw_log_normalizer(std::span<const float> logits);  // fills top_scratch_
  void save_raw(std::span<float> logits, std::span<const int32_t> masked);
  float raw_logit(std::span<const float> logits, int32_t token) const;
  void apply_bias_mask_penalties(std::span<float> logits, std::span<const int32_t> masked) const;
  int32_t draw(std::span<const float> logits, double u);
  void select_top_k(std::span<const float> logits, size_t k);  // scratch_ = top k, best first
  // Reorders scratch_: the nucleus first (set-wise); returns its size.
  size_t top_p_cut(std::span<const float> logits, double target_mass);
  int32_t no_candidates(std::span<const float> logits);

  SamplingParams params_;
  uint64_t seed_;
  uint64_t step_ = 0;                                   // sample() calls so far
  std::unordered_map<int32_t, int32_t> output_counts_;  // token -> times generated
  std::vector<int32_t> prompt_tokens_;  // distinct, sorted; empty when repetition_penalty == 1
  std::vector<Candidate> scratch_;      // [<= vocab] candidates; [0, kept_) drawn from
  std::vector<std::pair<int32_t, float>> saved_raw_;  // (id, raw logit) of ids edited in place
  std::vector<Candidate> ordered_;      // [<= vocab] top_p_cut's output before the swap
  std::vector<float> weights_;          // [vocab] exp((logit - max) / T); 0 for masked
  std::vector<double> bin_mass_;        // top_p_cut's histogram of weight mass
  std::vector<Candidate> top_scratch_;  // [<= top_logprobs] best raw logits
  size_t kept_ = 0;
  double kept_total_ = 0.0;  // sum of the kept weights
  bool dense_ = false;       // the last draw used weights_ directly (no filter)
};

}  // namespace tessera::sampling

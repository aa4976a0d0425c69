// SequenceSampler behaviour beyond the oracle: seeded reproducibility whatever the batch around
// it, fork streams, greedy tie-break and no randomness, masking, penalties counting accepted
// tokens, validate() messages, and (printed only) sample() timings at vocab 49152.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/sampling/sampling_math.h"
#include "tessera/sampling/sampler.h"
#include "tessera/sampling/sampling_params.h"
#include "tessera/sampling/sequence_sampler.h"

namespace tessera::sampling {
namespace {

std::vector<float> random_row(int vocab, uint64_t seed, float scale = 2.5f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> row(vocab);
  for (float& v : row) v = normal(rng);
  return row;
}

std::vector<int32_t> run(SequenceSampler& s, const std::vector<std::vector<float>>& rows) {
  std::vector<int32_t> tokens;
  for (const auto& r : rows) {
    std::vector<float> row = r;
    tokens.push_back(s.sample(row).token);
    s.accept(tokens.back());
  }
  return tokens;
}

std::vector<std::vector<float>> rows(int n, int vocab, uint64_t seed) {
  std::vector<std::vector<float>> out;
  for (int i = 0; i < n; ++i) out.push_back(random_row(vocab, seed + i, 1.0f));
  return out;
}

SamplingParams seeded(uint64_t seed) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.95f;
  p.seed = seed;
  return p;
}

TEST(SamplingSeed, SameSeedSameTokensWhateverTheBatch) {
  const auto steps = rows(64, 500, 1);
  SequenceSampler solo(seeded(42), 0, {});
  const auto expected = run(solo, steps);
  // The same request inside a batch with others that draw before and after it every step.
  SequenceSampler a(seeded(42), 0, {}), other1(seeded(7), 0, {}), other2({}, 99, {});
  std::vector<int32_t> got;
  for (const auto& r : steps) {
    std::vector<float> r1 = r, r2 = random_row(500, got.size() + 1000), r3 = r;
    other1.accept(other1.sample(r1).token);
    got.push_back(a.sample(r3).token);
    a.accept(got.back());
    other2.accept(other2.sample(r2).token);
  }
  EXPECT_EQ(got, expected);
  // params.seed wins over the engine's fallback seed.
  SequenceSampler b(seeded(42), 12345, {});
  EXPECT_EQ(run(b, steps), expected);
  EXPECT_EQ(b.seed(), 42u);
  SequenceSampler c(seeded(43), 0, {});
  EXPECT_NE(run(c, steps), expected);
}

TEST(SamplingSeed, UnseededUsesTheFallbackSeed) {
  const auto steps = rows(32, 300, 5);
  SequenceSampler a({}, 777, {}), b({}, 777, {}), c({}, 778, {});
  const auto ta = run(a, steps);
  EXPECT_EQ(ta, run(b, steps));
  EXPECT_NE(ta, run(c, steps));
}

TEST(SamplingSeed, ForkStreamsDifferAndReproduce) {
  const auto steps = rows(48, 400, 9);
  SequenceSampler parent(seeded(100), 0, {});
  std::vector<float> first = steps[0];
  parent.accept(parent.sample(first).token);
  std::vector<std::vector<int32_t>> outs;
  for (int i = 0; i < 3; ++i) {
    SequenceSampler f = parent.fork(i);
    outs.push_back(run(f, steps));
    SequenceSampler again = parent.fork(i);
    EXPECT_EQ(run(again, steps), outs.back()) << i;
    EXPECT_EQ(f.seed(), 100u + i);
  }
  EXPECT_NE(outs[0], outs[1]);
  EXPECT_NE(outs[1], outs[2]);
  // Choice i of a seeded request == a fresh request seeded seed + i with the same history.
  SequenceSampler fresh(seeded(102), 0, {});
  std::vector<float> again = steps[0];
  SequenceSampler replay(seeded(100), 0, {});
  fresh.accept(replay.sample(again).token);
  EXPECT_EQ(run(fresh, steps), outs[2]);
}

TEST(SamplingSeed, ForkKeepsHistoryForPenalties) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.presence_penalty = 2.0f;
  SequenceSampler s(p, 0, {});
  s.accept(3);
  SequenceSampler f = s.fork(1);
  std::vector<float> row = {0.0f, 0.0f, 0.0f, 1.5f, 1.0f};
  EXPECT_EQ(f.sample(row).token, 4);  // 1.5 - 2 < 1.0
}

TEST(SamplingGreedy, LowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.seed = 1;
  SequenceSampler s(p, 0, {});
  std::vector<float> row = {1.0f, 3.0f, 3.0f, -2.0f};
  EXPECT_EQ(s.sample(row).token, 1);
  EXPECT_TRUE(s.last_distribution().empty());
  row = {-INFINITY, 2.0f, 2.0f};
  EXPECT_EQ(s.sample(row).token, 1);
}

// The documented draw: u = philox_uniform(seed, step) with step = the sampler's call count (the
// stream Backend::sample uses), the first kept token in draw order (descending logit, ties to the
// lower id) whose cumulative weight exceeds u * total. With two equal logits the token is
// u >= 1/2 — pinned here for every compiler.
TEST(SamplingSeed, DrawIsPhiloxOfSeedAndStep) {
  SamplingParams p;
  p.seed = 2024;
  SequenceSampler s(p, 0, {});
  for (uint64_t i = 0; i < 256; ++i) {
    ASSERT_EQ(s.step(), i);
    std::vector<float> row = {0.25f, 0.25f};
    const double u = tessera::kernels::sampling::philox_uniform(2024, i);
    ASSERT_EQ(s.sample(row).token, u >= 0.5 ? 1 : 0) << i;
  }
  // Draw order is descending logit: the larger logit takes the low end of [0, 1).
  SequenceSampler t(p, 0, {});
  for (uint64_t i = 0; i < 64; ++i) {
    std::vector<float> row = {0.0f, std::log(3.0f)};  // p = (1/4, 3/4)
    const double u = tessera::kernels::sampling::philox_uniform(2024, i);
    ASSERT_EQ(t.sample(row).token, u < 0.75 ? 1 : 0) << i;
  }
}

// A token drawn elsewhere (skip_step) takes one step of the stream, like a sample() call.
TEST(SamplingSeed, SkipStepAdvancesTheStream) {
  SamplingParams p;
  p.seed = 9;
  const auto steps = rows(6, 300, 4);
  SequenceSampler a(p, 0, {}), b(p, 0, {});
  std::vector<float> row = steps[0];
  const int32_t first = a.sample(row).token;
  a.accept(first);
  b.skip_step();
  b.accept(first);
  for (size_t i = 1; i < steps.size(); ++i) {
    std::vector<float> ra = steps[i], rb = steps[i];
    EXPECT_EQ(a.sample(ra).token, b.sample(rb).token) << i;
  }
  EXPECT_EQ(a.step(), b.step());
}

TEST(SamplingGreedy, RespectsBiasMaskAndPenalties) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.logit_bias = {{0, 5.0f}};
  SequenceSampler s(p, 0, {});
  std::vector<float> row = {1.0f, 4.0f, 3.0f};
  EXPECT_EQ(s.sample(row).token, 0);
  row = {1.0f, 4.0f, 3.0f};
  const std::vector<int32_t> masked = {0};
  EXPECT_EQ(s.sample(row, masked).token, 1);
  SamplingParams r;
  r.temperature = 0.0f;
  r.repetition_penalty = 2.0f;
  const std::vector<int32_t> prompt = {1};
  SequenceSampler t(r, 0, prompt);
  row = {1.0f, 4.0f, 3.0f};
  EXPECT_EQ(t.sample(row).token, 2);  // 4 / 2 < 3
}

TEST(SamplingMask, MaskedIdsAreNeverDrawn) {
  SamplingParams p;
  p.temperature = 2.0f;
  SequenceSampler s(p, 3, {});
  const std::vector<float> base = {5.0f, 0.0f, 5.0f, 0.1f, 4.0f, -1.0f};
  const std::vector<int32_t> masked = {0, 2, 4};
  for (int i = 0; i < 5000; ++i) {
    std::vector<float> row = base;
    const int32_t t = s.sample(row, masked).token;
    ASSERT_TRUE(t == 1 || t == 3 || t == 5) << t;
  }
}

TEST(SamplingPenalties, AcceptedTokensCount) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.frequency_penalty = 1.0f;
  SequenceSampler s(p, 0, {});
  // Token 0 starts 2.5 ahead; each acceptance costs it 1.0.
  std::vector<int32_t> got;
  for (int i = 0; i < 4; ++i) {
    std::vector<float> row = {2.5f, 0.0f};
    got.push_back(s.sample(row).token);
    s.accept(got.back());
  }
  EXPECT_EQ(got, (std::vector<int32_t>{0, 0, 0, 1}));
}

TEST(SamplingValidate, DefaultsAreValid) { EXPECT_TRUE(validate({}, 100).ok()); }

TEST(SamplingValidate, MessagesNameFieldAndValue) {
  struct Bad {
    void (*mutate)(SamplingParams&);
    const char* message;
  };
  const Bad bads[] = {
      {[](SamplingParams& p) { p.temperature = 2.5f; }, "temperature must be in [0, 2], got 2.5"},
      {[](SamplingParams& p) { p.temperature = -0.5f; }, "temperature must be in [0, 2], got -0.5"},
      {[](SamplingParams& p) { p.top_p = 0.0f; }, "top_p must be in (0, 1], got 0"},
      {[](SamplingParams& p) { p.top_p = 1.5f; }, "top_p must be in (0, 1], got 1.5"},
      {[](SamplingParams& p) { p.top_k = -2; },
       "top_k must be -1 or 0 (no limit) or a positive count, got -2"},
      {[](SamplingParams& p) { p.min_p = 1.25f; }, "min_p must be in [0, 1], got 1.25"},
      {[](SamplingParams& p) { p.repetition_penalty = 0.0f; },
       "repetition_penalty must be a finite number > 0, got 0"},
      {[](SamplingParams& p) { p.frequency_penalty = 2.5f; },
       "frequency_penalty must be in [-2, 2], got 2.5"},
      {[](SamplingParams& p) { p.presence_penalty = -3.0f; },
       "presence_penalty must be in [-2, 2], got -3"},
      {[](SamplingParams& p) { p.logit_bias = {{100, 1.0f}}; },
       "logit_bias token id must be in [0, 100), got 100"},
      {[](SamplingParams& p) { p.logit_bias = {{-1, 1.0f}}; },
       "logit_bias token id must be in [0, 100), got -1"},
      {[](SamplingParams& p) { p.logit_bias = {{5, 101.0f}}; },
       "logit_bias value for token 5 must be in [-100, 100], got 101"},
      {[](SamplingParams& p) { p.logprobs = true, p.top_logprobs = 21; },
       "top_logprobs must be in [0, 20], got 21"},
      {[](SamplingParams& p) { p.top_logprobs = 3; },
       "top_logprobs requires logprobs to be true, got top_logprobs 3"},
      {[](SamplingParams& p) { p.temperature = std::nanf(""); },
       "temperature must be in [0, 2], got nan"},
  };
  for (const Bad& bad : bads) {
    SamplingParams p;
    bad.mutate(p);
    const Status status = validate(p, 100);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << bad.message;
    EXPECT_EQ(status.message(), bad.message);
  }
  SamplingParams edge;
  edge.temperature = 0.0f;
  edge.top_p = 1.0f;
  edge.top_k = -1;
  edge.min_p = 1.0f;
  edge.frequency_penalty = -2.0f;
  edge.presence_penalty = 2.0f;
  edge.logit_bias = {{0, -100.0f}, {99, 100.0f}};
  edge.logprobs = true;
  edge.top_logprobs = 20;
  EXPECT_TRUE(validate(edge, 100).ok());
}

TEST(SamplingLegacy, SamplerWrapsSequenceSampler) {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 40;
  p.top_p = 0.95f;
  p.seed = 9;
  Sampler legacy(p);
  SequenceSampler s(p, 0, {});
  for (int i = 0; i < 30; ++i) {
    const auto row = random_row(1000, i);
    std::vector<float> copy = row;
    const int32_t t = legacy.sample(row);
    EXPECT_EQ(t, s.sample(copy).token) << i;
    s.accept(t);
  }
}

// (min, median) microseconds per sample(); the row copy is outside the timed region.
std::pair<double, double> time_sample_us(const SamplingParams& p, const std::vector<float>& base,
                                         int iters) {
  SequenceSampler s(p, 1, {});
  std::vector<float> row = base;
  for (int i = 0; i < 5; ++i) {  // warm up (first call sizes the scratch)
    row = base;
    (void)s.sample(row);
  }
  std::vector<double> times_us;
  for (int i = 0; i < iters; ++i) {
    row = base;
    const auto t0 = std::chrono::steady_clock::now();
    (void)s.sample(row);
    times_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times_us.begin(), times_us.end());
  return {times_us.front(), times_us[times_us.size() / 2]};
}

// Prints only: no timed assertion (the machine is shared).
TEST(SamplingPerf, PrintsSampleTimesAtVocab49152) {
  const int vocab = 49152;
  struct Setting {
    const char* name;
    SamplingParams params;
  };
  std::vector<Setting> settings;
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  settings.push_back({"greedy", greedy});
  SamplingParams plain;
  settings.push_back({"temperature 1", plain});
  SamplingParams top_p;
  top_p.top_p = 0.95f;
  settings.push_back({"top_p 0.95", top_p});
  SamplingParams top_k;
  top_k.top_k = 40;
  settings.push_back({"top_k 40", top_k});
  SamplingParams cli;
  cli.temperature = 0.8f;
  cli.top_k = 40;
  cli.top_p = 0.95f;
  settings.push_back({"T0.8 top_k 40 top_p 0.95", cli});
  SamplingParams min_p;
  min_p.min_p = 0.05f;
  settings.push_back({"min_p 0.05", min_p});
  SamplingParams lp = top_p;
  lp.logprobs = true;
  lp.top_logprobs = 5;
  settings.push_back({"top_p 0.95 + top_logprobs 5", lp});
  // Peaked: LLM-like (std 2.5, a nucleus of hundreds); flat: std 0.5 (a nucleus of most ids).
  for (const float scale : {2.5f, 0.5f}) {
    const auto base = random_row(vocab, 77, scale);
    for (const Setting& s : settings) {
      const auto [min_us, median_us] = time_sample_us(s.params, base, 100);
      std::printf("[sampling perf] vocab %d logits std %.1f %-28s min %8.1f us, median %8.1f us\n",
                  vocab, scale, s.name, min_us, median_us);
    }
  }
}

}  // namespace
}  // namespace tessera::sampling

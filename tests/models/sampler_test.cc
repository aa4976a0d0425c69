// Sampler: greedy is argmax, filters restrict the support, a seed makes runs reproducible, and
// sampled frequencies follow softmax(logits / temperature).
#include "tessera/sampling/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <vector>

namespace tessera::sampling {
namespace {

const std::vector<float> kLogits = {0.5f, 2.0f, -1.0f, 1.5f, 0.0f};

SamplingParams params(float temperature, std::optional<uint64_t> seed, int32_t top_k = 0,
                      float top_p = 1.0f) {
  SamplingParams p;
  p.temperature = temperature;
  p.seed = seed;
  p.top_k = top_k;
  p.top_p = top_p;
  return p;
}

TEST(Sampler, GreedyIsArgmax) {
  Sampler s(params(0.0f, std::nullopt));
  EXPECT_EQ(s.sample(kLogits), 1);
  EXPECT_EQ(argmax(std::vector<float>{3.0f, 3.0f}), 0);  // lowest id on ties
}

TEST(Sampler, TopKOneAndTinyTopPAreGreedy) {
  Sampler k1(params(1.0f, 7, 1, 1.0f));
  Sampler p0(params(1.0f, 7, 0, 0.01f));
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(k1.sample(kLogits), 1);
    EXPECT_EQ(p0.sample(kLogits), 1);
  }
}

TEST(Sampler, TopKRestrictsSupport) {
  Sampler s(params(5.0f, 3, 2, 1.0f));
  for (int i = 0; i < 200; ++i) {
    int32_t t = s.sample(kLogits);
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
}

TEST(Sampler, SeedReproduces) {
  Sampler a(params(1.0f, 42)), b(params(1.0f, 42));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.sample(kLogits), b.sample(kLogits));
}

TEST(Sampler, FrequenciesFollowSoftmax) {
  const float temperature = 0.7f;
  Sampler s(params(temperature, 1));
  std::vector<double> p(kLogits.size());
  double total = 0.0;
  for (size_t i = 0; i < p.size(); ++i) total += p[i] = std::exp(kLogits[i] / temperature);
  std::vector<int> counts(kLogits.size(), 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(kLogits)];
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_NEAR(counts[i] / static_cast<double>(n), p[i] / total, 0.015) << i;
  }
}

}  // namespace
}  // namespace tessera::sampling

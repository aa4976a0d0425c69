// Sampler: greedy is argmax, filters restrict the support, a seed makes runs reproducible, and
// sampled frequencies follow softmax(logits / temperature).
#include "tessera/sampling/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace tessera::sampling {
namespace {

const std::vector<float> kLogits = {0.5f, 2.0f, -1.0f, 1.5f, 0.0f};

TEST(Sampler, GreedyIsArgmax) {
  Sampler s({.temperature = 0.0f});
  EXPECT_EQ(s.sample(kLogits), 1);
  EXPECT_EQ(argmax(std::vector<float>{3.0f, 3.0f}), 0);  // lowest id on ties
}

TEST(Sampler, TopKOneAndTinyTopPAreGreedy) {
  Sampler k1({.temperature = 1.0f, .top_k = 1, .seed = 7});
  Sampler p0({.temperature = 1.0f, .top_p = 0.01f, .seed = 7});
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(k1.sample(kLogits), 1);
    EXPECT_EQ(p0.sample(kLogits), 1);
  }
}

TEST(Sampler, TopKRestrictsSupport) {
  Sampler s({.temperature = 5.0f, .top_k = 2, .seed = 3});
  for (int i = 0; i < 200; ++i) {
    int32_t t = s.sample(kLogits);
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
}

TEST(Sampler, SeedReproduces) {
  Sampler a({.temperature = 1.0f, .seed = 42}), b({.temperature = 1.0f, .seed = 42});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.sample(kLogits), b.sample(kLogits));
}

TEST(Sampler, FrequenciesFollowSoftmax) {
  const float temperature = 0.7f;
  Sampler s({.temperature = temperature, .seed = 1});
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

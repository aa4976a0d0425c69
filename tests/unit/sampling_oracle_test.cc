// SequenceSampler against transformers' logits processors (scripts/make_sampling_fixtures.py):
// the kept token set exactly, its probabilities within 1e-5 relative, raw logprobs, greedy
// tokens, and draw frequencies against the oracle distribution by a seeded chi-square test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tessera/sampling/sampling_params.h"
#include "tessera/sampling/sequence_sampler.h"

namespace tessera::sampling {
namespace {

using nlohmann::json;

const json& fixture() {
  static const json doc = [] {
    std::ifstream in(std::string(TESSERA_FIXTURES_DIR) + "/sampling/sampling_cases.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return json::parse(ss.str());
  }();
  return doc;
}

struct Case {
  std::string name;
  SamplingParams params;
  std::vector<int32_t> prompt, output, masked;
  std::vector<float> logits;  // [vocab]
  const json* doc = nullptr;
};

Case load_case(const json& j) {
  Case c;
  c.name = j["name"].get<std::string>();
  const json& p = j["params"];
  c.params.temperature = p.value("temperature", 1.0f);
  c.params.top_k = p.value("top_k", 0);
  c.params.top_p = p.value("top_p", 1.0f);
  c.params.min_p = p.value("min_p", 0.0f);
  c.params.repetition_penalty = p.value("repetition_penalty", 1.0f);
  c.params.frequency_penalty = p.value("frequency_penalty", 0.0f);
  c.params.presence_penalty = p.value("presence_penalty", 0.0f);
  for (const auto& b : j["logit_bias"]) {
    c.params.logit_bias.emplace_back(b[0].get<int32_t>(), b[1].get<float>());
  }
  c.params.logprobs = true;
  c.params.top_logprobs = 20;
  c.prompt = j["prompt"].get<std::vector<int32_t>>();
  c.output = j["output"].get<std::vector<int32_t>>();
  c.masked = j["masked"].get<std::vector<int32_t>>();
  for (const auto& v : j["logits"]) c.logits.push_back(static_cast<float>(v.get<double>()));
  c.doc = &j;
  return c;
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const auto& j : fixture()["cases"]) cases.push_back(load_case(j));
  return cases;
}

SequenceSampler make_sampler(const Case& c, uint64_t seed) {
  SequenceSampler s(c.params, seed, c.prompt);
  for (const int32_t t : c.output) s.accept(t);
  return s;
}

TEST(SamplingOracle, FixtureLoads) {
  ASSERT_GE(fixture()["cases"].size(), 10u);
  for (const Case& c : all_cases()) {
    EXPECT_TRUE(validate(c.params, fixture()["vocab"].get<int64_t>()).ok()) << c.name;
  }
}

TEST(SamplingOracle, ProcessedDistributionMatchesTransformers) {
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.name);
    SequenceSampler s = make_sampler(c, 7);
    std::vector<float> row = c.logits;
    const TokenChoice choice = s.sample(row, c.masked);
    auto dist = s.last_distribution();
    if (c.doc->contains("greedy_token")) {
      EXPECT_EQ(choice.token, (*c.doc)["greedy_token"].get<int32_t>());
      EXPECT_TRUE(dist.empty());
      continue;
    }
    std::sort(dist.begin(), dist.end());
    const auto kept = (*c.doc)["kept"].get<std::vector<int32_t>>();
    const auto probs = (*c.doc)["kept_probs"].get<std::vector<double>>();
    ASSERT_EQ(dist.size(), kept.size());
    bool drawn_kept = false;
    for (size_t i = 0; i < kept.size(); ++i) {
      ASSERT_EQ(dist[i].first, kept[i]) << i;
      EXPECT_NEAR(dist[i].second, probs[i], 1e-5 * probs[i] + 1e-12) << "token " << kept[i];
      drawn_kept |= choice.token == kept[i];
    }
    EXPECT_TRUE(drawn_kept) << choice.token;
  }
}

TEST(SamplingOracle, LogprobsComeFromRawLogits) {
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.name);
    SequenceSampler s = make_sampler(c, 11);
    std::vector<float> row = c.logits;
    const TokenChoice choice = s.sample(row, c.masked);
    const double lse = (*c.doc)["logsumexp"].get<double>();
    EXPECT_NEAR(choice.logprob, c.logits[choice.token] - lse, 1e-5);
    const auto& top = (*c.doc)["top_logprobs"];
    ASSERT_EQ(choice.top.size(), top.size());
    for (size_t i = 0; i < top.size(); ++i) {
      EXPECT_EQ(choice.top[i].first, top[i][0].get<int32_t>()) << i;
      EXPECT_NEAR(choice.top[i].second, top[i][1].get<double>(), 1e-5) << i;
    }
  }
}

TEST(SamplingOracle, LogprobsDoNotChangeTheDraws) {
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.name);
    Case quiet = c;
    quiet.params.logprobs = false;
    quiet.params.top_logprobs = 0;
    SequenceSampler a = make_sampler(c, 5), b = make_sampler(quiet, 5);
    for (int step = 0; step < 20; ++step) {
      std::vector<float> ra = c.logits, rb = c.logits;
      const int32_t ta = a.sample(ra, c.masked).token;
      ASSERT_EQ(ta, b.sample(rb, c.masked).token) << step;
      a.accept(ta);
      b.accept(ta);
    }
  }
}

// Upper critical value of chi-square with `df` degrees of freedom at alpha = 1e-3
// (Wilson-Hilferty; within ~1% of the exact quantile for df >= 3).
double chi_square_critical(int df) {
  const double z = 3.0902;  // standard normal quantile at 1 - 1e-3
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

TEST(SamplingOracle, DrawFrequenciesMatchTheProcessedDistribution) {
  for (const Case& c : all_cases()) {
    if (c.doc->contains("greedy_token")) continue;
    SCOPED_TRACE(c.name);
    const auto kept = (*c.doc)["kept"].get<std::vector<int32_t>>();
    const auto probs = (*c.doc)["kept_probs"].get<std::vector<double>>();
    std::map<int32_t, double> expected_p;
    for (size_t i = 0; i < kept.size(); ++i) expected_p[kept[i]] = probs[i];
    const int num_draws = 20000;
    Case quiet = c;
    quiet.params.logprobs = false;
    quiet.params.top_logprobs = 0;
    SequenceSampler s = make_sampler(quiet, 20240601);
    std::map<int32_t, int> counts;
    for (int i = 0; i < num_draws; ++i) {
      std::vector<float> row = c.logits;
      const int32_t t = s.sample(row, c.masked).token;
      ASSERT_TRUE(expected_p.count(t)) << "drew " << t << ", which the oracle filtered out";
      ++counts[t];
    }
    // Bins with expected count < 5 are pooled into one.
    double chi2 = 0.0, pooled_expected = 0.0, pooled_observed = 0.0;
    int bins = 0;
    for (const auto& [t, p] : expected_p) {
      const double e = p * num_draws;
      const double o = counts.count(t) ? counts[t] : 0;
      if (e < 5.0) {
        pooled_expected += e;
        pooled_observed += o;
        continue;
      }
      chi2 += (o - e) * (o - e) / e;
      ++bins;
    }
    if (pooled_expected >= 5.0) {
      chi2 += (pooled_observed - pooled_expected) * (pooled_observed - pooled_expected) /
              pooled_expected;
      ++bins;
    }
    if (bins < 2) continue;  // one token carries everything (e.g. a tiny nucleus)
    EXPECT_LT(chi2, chi_square_critical(std::max(bins - 1, 3))) << bins << " bins";
  }
}

}  // namespace
}  // namespace tessera::sampling

// Backend::sample's spec and its device algorithm, on the host: Philox4x32-10 against the
// Random123 known-answer vectors, the deterministic exp and order keys, a serial emulation of
// the CUDA kernel's radix selections (kernels/cuda/sampling/sampling.cu) against the reference,
// chi-square of the reference's draws, and its kept distribution against SequenceSampler and the
// transformers fixture (tests/fixtures/sampling/sampling_cases.json).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <vector>

#include "kernels/cuda/sampling/sampling_math.h"
#include "kernels/ref/sampling.h"
#include "tessera/backend/backend.h"
#include "tessera/backend/op_checks.h"
#include "tessera/sampling/sequence_sampler.h"

namespace tessera {
namespace {

namespace ks = kernels::sampling;
namespace kr = kernels::ref;
using ks::SampleRowSpec;

// ---- Philox and the shared arithmetic.

TEST(SamplingDeviceMath, PhiloxMatchesRandom123KnownAnswers) {
  struct Kat {
    ks::Philox4 ctr;
    uint32_t k0, k1;
    ks::Philox4 want;
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
      {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
       0xffffffffu,
       0xffffffffu,
       {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
      {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
       0xa4093822u,
       0x299f31d0u,
       {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
  };
  for (const Kat& k : kats) {
    const ks::Philox4 got = ks::philox4x32_10(k.ctr, k.k0, k.k1);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(got.v[i], k.want.v[i]) << i;
  }
}

TEST(SamplingDeviceMath, UniformIsKeyedBySeedAndStepWith53Bits) {
  // u(seed, step) = Philox(counter = (step, 0), key = seed) -> (x0 << 21 | x1 >> 11) * 2^-53.
  const ks::Philox4 x = ks::philox4x32_10({{0, 0, 0, 0}}, 0, 0);
  const uint64_t bits = (uint64_t{x.v[0]} << 21) | (x.v[1] >> 11);
  EXPECT_EQ(ks::philox_uniform(0, 0), std::ldexp(static_cast<double>(bits), -53));
  double sum = 0.0, lo = 1.0, hi = 0.0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double u = ks::philox_uniform(12345, static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    EXPECT_EQ(u, std::ldexp(std::floor(std::ldexp(u, 53)), -53));
    sum += u;
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  EXPECT_LT(lo, 1e-3);
  EXPECT_GT(hi, 1 - 1e-3);
  EXPECT_NE(ks::philox_uniform(1, 0), ks::philox_uniform(0, 0));
  EXPECT_NE(ks::philox_uniform(0, 1ull << 32), ks::philox_uniform(0, 0));
  EXPECT_NE(ks::philox_uniform(1ull << 32, 0), ks::philox_uniform(0, 0));
}

TEST(SamplingDeviceMath, DeterministicExpIsAccurate) {
  EXPECT_EQ(ks::det_exp(0.0), 1.0);
  EXPECT_EQ(ks::det_exp(-701.0), 0.0);
  EXPECT_EQ(ks::det_exp(-std::numeric_limits<double>::infinity()), 0.0);
  EXPECT_EQ(ks::det_exp(std::nan("")), 0.0);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> dist(-700.0, 0.0), small(-2.0, 0.0);
  double worst = 0.0;
  for (int i = 0; i < 200000; ++i) {
    const double d = (i % 2) ? dist(rng) : small(rng);
    const double want = std::exp(d);
    worst = std::max(worst, std::abs(ks::det_exp(d) - want) / want);
  }
  EXPECT_LT(worst, 4e-16);
}

TEST(SamplingDeviceMath, OrderKeysAreMonotone) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> xs = {-inf, -3e38f, -1.0f, -1e-40f, 0.0f, 1e-40f, 1.0f, 3e38f, inf};
  for (size_t i = 1; i < xs.size(); ++i) {
    EXPECT_LT(ks::order_key(xs[i - 1]), ks::order_key(xs[i])) << xs[i];
  }
  EXPECT_EQ(ks::order_key(-0.0f), ks::order_key(0.0f));
  EXPECT_EQ(ks::order_key(std::nanf("")), 0u);
  EXPECT_EQ(ks::order_key(-std::nanf("")), 0u);
  EXPECT_GT(ks::order_key(-inf), 0u);
  for (float x : xs) EXPECT_EQ(ks::key_logit(ks::order_key(x)), x);
}

TEST(SamplingDeviceMath, BinWalks) {
  uint32_t hist[ks::kRadixBins] = {};
  hist[200] = 3;
  hist[100] = 5;
  uint32_t above = 0;
  EXPECT_EQ(ks::pick_count_bin(hist, 3, &above), 200);
  EXPECT_EQ(above, 0u);
  EXPECT_EQ(ks::pick_count_bin(hist, 4, &above), 100);
  EXPECT_EQ(above, 3u);
  EXPECT_EQ(ks::pick_count_bin(hist, 9, &above), -1);
  double mass[ks::kRadixBins] = {};
  mass[250] = 0.5;
  mass[10] = 0.25;
  double before = 0.0;
  bool crossed = false;
  EXPECT_EQ(ks::pick_mass_bin(mass, 0.0, 0.5, false, &before, &crossed), 250);
  EXPECT_TRUE(crossed);
  EXPECT_EQ(ks::pick_mass_bin(mass, 0.0, 0.5, true, &before, &crossed), 10);
  EXPECT_EQ(before, 0.5);
  EXPECT_EQ(ks::pick_mass_bin(mass, 0.0, 0.75, true, &before, &crossed), 10);
  EXPECT_FALSE(crossed);  // nothing exceeds: the last bin of positive mass
  EXPECT_EQ(ks::pick_tie_index(0.0, 0.25, 4, 0.5, false), 1u);
  EXPECT_EQ(ks::pick_tie_index(0.0, 0.25, 4, 0.5, true), 2u);
  EXPECT_EQ(ks::pick_tie_index(0.0, 0.25, 4, 1.0, true), 3u);
}

// ---- A serial emulation of sample_kernel: the same passes, filters and helpers, one thread.

struct EmuFilter {
  uint32_t end_key = 0;
  int64_t end_id = INT64_MAX;
  float min_p = 0.0f;
};

int32_t emulate_kernel_row(const float* x, int64_t vocab, const SampleRowSpec& spec) {
  int64_t argmax = -1;
  for (int64_t i = 0; i < vocab; ++i) {
    if (x[i] == x[i] && (argmax < 0 || x[i] > x[argmax])) argmax = i;
  }
  if (argmax < 0) argmax = 0;
  const float x_max = x[argmax];
  if (!(spec.temperature > 0.0f) || !std::isfinite(x_max) ||
      !std::isfinite(ks::fdiv(x_max, spec.temperature))) {
    return static_cast<int32_t>(argmax);
  }
  const float s_max = ks::fdiv(x_max, spec.temperature);
  auto weight = [&](float xi) { return ks::logit_weight(xi, spec.temperature, s_max); };
  EmuFilter f;
  auto considered = [&](int64_t i, uint32_t key, bool need_w, double* w) {
    if (!ks::in_prefix(key, i, f.end_key, f.end_id)) return false;
    *w = (need_w || f.min_p > 0.0f) ? weight(x[i]) : 0.0;
    return f.min_p <= 0.0f || *w >= static_cast<double>(f.min_p);
  };
  auto radix = [&](auto& sel, bool mass_select) {
    for (int pass = 0; pass < ks::kRadixPasses; ++pass) {
      uint32_t hist[ks::kRadixBins] = {};
      double mass[ks::kRadixBins] = {};
      for (int64_t i = 0; i < vocab; ++i) {
        const uint32_t key = ks::order_key(x[i]);
        double w = 0.0;
        if (!sel.matches(key) || !considered(i, key, mass_select, &w)) continue;
        const int bin = (key >> sel.shift()) & 0xff;
        ++hist[bin];
        mass[bin] += w;
      }
      if constexpr (std::is_same_v<std::decay_t<decltype(sel)>, ks::MassSelect>) {
        sel.step(mass, hist);
      } else {
        sel.step(hist);
      }
    }
  };
  auto tie_id = [&](uint32_t key, int64_t nth) -> int64_t {
    int64_t seen = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      double w = 0.0;
      if (ks::order_key(x[i]) == key && considered(i, key, false, &w) && ++seen == nth) return i;
    }
    return -1;
  };
  if (spec.top_k > 0 && spec.top_k < vocab) {
    ks::CountSelect sel;
    sel.rank = static_cast<uint32_t>(spec.top_k);
    radix(sel, false);
    f.end_id = sel.tie_rank() == sel.tie_count ? INT64_MAX : tie_id(sel.prefix, sel.tie_rank());
    f.end_key = sel.prefix;
  }
  if (spec.top_p < 1.0f) {
    ks::MassSelect sel;
    sel.scale = spec.top_p;
    sel.strict = false;
    radix(sel, true);
    if (sel.any) {
      f.end_id = tie_id(sel.prefix, int64_t(sel.tie_index(weight(ks::key_logit(sel.prefix)))) + 1);
      f.end_key = sel.prefix;
    }
  }
  f.min_p = spec.min_p;
  ks::MassSelect sel;
  sel.scale = ks::philox_uniform(spec.seed, spec.step);
  sel.strict = true;
  radix(sel, true);
  if (!sel.any) return static_cast<int32_t>(argmax);
  const int64_t id =
      tie_id(sel.prefix, int64_t(sel.tie_index(weight(ks::key_logit(sel.prefix)))) + 1);
  return static_cast<int32_t>(id < 0 ? argmax : id);
}

SampleRowSpec random_spec(std::mt19937_64& rng, int64_t vocab, int kind) {
  SampleRowSpec s;
  s.temperature = 0.3f + 0.1f * static_cast<float>(rng() % 15);
  s.seed = rng();
  s.step = rng() % 100000;
  switch (kind % 6) {
    case 0:
      s.temperature = 0.0f;
      break;
    case 1:
      break;
    case 2:
      s.top_k = static_cast<int32_t>(1 + rng() % std::max<int64_t>(1, vocab));
      break;
    case 3:
      s.top_p = 0.02f + 0.05f * static_cast<float>(rng() % 20);
      break;
    case 4:
      s.min_p = 0.01f * static_cast<float>(rng() % 50);
      break;
    case 5:
      s.top_k = static_cast<int32_t>(1 + rng() % 100);
      s.top_p = 0.5f + 0.05f * static_cast<float>(rng() % 10);
      s.min_p = 0.02f;
      break;
  }
  return s;
}

// Random rows of several shapes: spread logits, quantised (ties), NaN / -inf sprinkled.
std::vector<float> random_row(std::mt19937_64& rng, int64_t vocab, int flavour) {
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> row(static_cast<size_t>(vocab));
  for (float& v : row) v = normal(rng);
  if (flavour % 3 == 1) {
    for (float& v : row) v = std::round(v);  // many ties
  } else if (flavour % 3 == 2) {
    for (size_t i = 0; i < row.size(); i += 7) row[i] = std::nanf("");
    for (size_t i = 3; i < row.size(); i += 11) row[i] = -std::numeric_limits<float>::infinity();
  }
  return row;
}

TEST(SamplingDeviceEmulation, KernelAlgorithmMatchesTheReference) {
  std::mt19937_64 rng(99);
  int rows = 0, excused = 0;
  for (int64_t vocab : {1, 2, 7, 64, 769, 5000}) {
    for (int t = 0; t < 60; ++t) {
      const std::vector<float> row = random_row(rng, vocab, t);
      const SampleRowSpec spec = random_spec(rng, vocab, t);
      const int32_t want = kr::sample_row(row.data(), vocab, spec);
      const int32_t got = emulate_kernel_row(row.data(), vocab, spec);
      ++rows;
      if (got == want) continue;
      const auto kept = kr::sample_kept(row.data(), vocab, spec);
      const double d = kr::cdf_boundary_distance(kept, ks::philox_uniform(spec.seed, spec.step));
      EXPECT_LT(d, 1e-12) << "vocab " << vocab << " row " << t << ": " << got << " vs " << want;
      ++excused;
    }
  }
  EXPECT_LE(excused, 1) << "of " << rows;
}

TEST(SamplingDeviceEmulation, LargeVocabAndSpecialRows) {
  std::mt19937_64 rng(5);
  const int64_t vocab = 49152;
  for (int t = 0; t < 12; ++t) {
    const std::vector<float> row = random_row(rng, vocab, t);
    const SampleRowSpec spec = random_spec(rng, vocab, t);
    EXPECT_EQ(emulate_kernel_row(row.data(), vocab, spec), kr::sample_row(row.data(), vocab, spec))
        << t;
  }
  const float inf = std::numeric_limits<float>::infinity();
  SampleRowSpec spec;
  spec.seed = 3;
  std::vector<float> nan_row(50, std::nanf(""));
  EXPECT_EQ(kr::sample_row(nan_row.data(), 50, spec), 0);
  EXPECT_EQ(emulate_kernel_row(nan_row.data(), 50, spec), 0);
  std::vector<float> inf_row(50, 0.0f);
  inf_row[9] = inf;
  inf_row[30] = inf;
  EXPECT_EQ(kr::sample_row(inf_row.data(), 50, spec), 9);
  EXPECT_EQ(emulate_kernel_row(inf_row.data(), 50, spec), 9);
  std::vector<float> one(50, -inf);
  one[17] = 2.0f;
  one[3] = std::nanf("");
  EXPECT_EQ(kr::sample_row(one.data(), 50, spec), 17);
  EXPECT_EQ(emulate_kernel_row(one.data(), 50, spec), 17);
  spec.temperature = 1e-38f;  // x / T overflows: greedy
  std::vector<float> big = {1.0f, 3.0f, 2.0f};
  EXPECT_EQ(kr::sample_row(big.data(), 3, spec), 1);
  EXPECT_EQ(emulate_kernel_row(big.data(), 3, spec), 1);
}

TEST(SamplingReference, GreedyTiesAndNaN) {
  std::vector<float> row = {1.0f, std::nanf(""), 3.0f, 3.0f, -1.0f};
  SampleRowSpec spec;
  spec.temperature = 0.0f;
  EXPECT_EQ(kr::sample_row(row.data(), 5, spec), 2);
  EXPECT_TRUE(kr::sample_kept(row.data(), 5, spec).empty());
  spec.temperature = 1.0f;
  spec.top_k = 1;
  EXPECT_EQ(kr::sample_row(row.data(), 5, spec), 2);  // top_k = 1 keeps the lower tied id
  spec.top_k = 0;
  const auto kept = kr::sample_kept(row.data(), 5, spec);
  ASSERT_EQ(kept.size(), 5u);
  EXPECT_EQ(kept[0].id, 2);
  EXPECT_EQ(kept[1].id, 3);
  EXPECT_EQ(kept[4].id, 1);  // NaN last, weight 0
  EXPECT_EQ(kept[4].weight, 0.0);
}

// ---- Statistics of the reference's draws.

double chi_square_critical(int df) {  // alpha = 1e-3, Wilson-Hilferty
  const double z = 3.0902, a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

TEST(SamplingReference, DrawFrequenciesMatchTheKeptDistribution) {
  std::mt19937_64 rng(2024);
  const int64_t vocab = 300;
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::vector<float> row(vocab);
  for (float& v : row) v = normal(rng);
  struct P {
    float t;
    int k;
    float p, m;
  };
  for (const P& pr : {P{1.0f, 0, 1.0f, 0.0f}, P{0.7f, 20, 1.0f, 0.0f}, P{1.3f, 0, 0.8f, 0.0f},
                      P{1.0f, 0, 1.0f, 0.1f}, P{0.9f, 50, 0.9f, 0.05f}}) {
    SampleRowSpec spec;
    spec.temperature = pr.t;
    spec.top_k = pr.k;
    spec.top_p = pr.p;
    spec.min_p = pr.m;
    spec.seed = 77;
    const auto kept = kr::sample_kept(row.data(), vocab, spec);
    std::map<int32_t, double> prob;
    for (const auto& k : kept) prob[k.id] = k.prob;
    std::map<int32_t, int> counts;
    const int n = 20000;
    for (int i = 0; i < n; ++i) {
      spec.step = static_cast<uint64_t>(i);
      const int32_t id = kr::sample_row(row.data(), vocab, spec);
      ASSERT_TRUE(prob.count(id)) << id;
      ++counts[id];
    }
    double chi2 = 0.0, pooled_e = 0.0, pooled_o = 0.0;
    int bins = 0;
    for (const auto& [id, p] : prob) {
      const double e = p * n, o = counts.count(id) ? counts[id] : 0;
      if (e < 5.0) {
        pooled_e += e;
        pooled_o += o;
        continue;
      }
      chi2 += (o - e) * (o - e) / e;
      ++bins;
    }
    if (pooled_e >= 5.0) {
      chi2 += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
      ++bins;
    }
    ASSERT_GE(bins, 2);
    EXPECT_LT(chi2, chi_square_critical(std::max(bins - 1, 3))) << bins << " bins, k " << pr.k;
  }
}

// ---- The kept distribution against the host sampler and transformers.

void expect_same_distribution(const std::vector<kr::KeptToken>& kept,
                              std::vector<std::pair<int32_t, double>> want, double rel) {
  std::vector<std::pair<int32_t, double>> got;
  for (const auto& k : kept) {
    if (k.prob > 0.0) got.emplace_back(k.id, k.prob);
  }
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].first, want[i].first) << i;
    EXPECT_NEAR(got[i].second, want[i].second, rel * want[i].second + 1e-12) << got[i].first;
  }
}

TEST(SamplingReference, KeptDistributionMatchesSequenceSampler) {
  std::mt19937_64 rng(31);
  for (int t = 0; t < 40; ++t) {
    const int64_t vocab = t % 2 ? 1000 : 4097;
    std::normal_distribution<float> normal(0.0f, 2.0f);
    std::vector<float> row(vocab);
    for (float& v : row) v = normal(rng);
    SampleRowSpec spec = random_spec(rng, vocab, 1 + t % 5);
    sampling::SamplingParams params;
    params.temperature = spec.temperature;
    params.top_k = spec.top_k;
    params.top_p = spec.top_p;
    params.min_p = spec.min_p;
    sampling::SequenceSampler s(params, 1, {});
    std::vector<float> scratch = row;
    (void)s.sample(scratch);
    SCOPED_TRACE(t);
    expect_same_distribution(kr::sample_kept(row.data(), vocab, spec), s.last_distribution(), 1e-5);
  }
}

// One random stream: SequenceSampler at step s with seed k draws the reference's id for
// (seed k, step s) — the engine's host and device paths give the same tokens — except where u is
// within float error of a CDF boundary (host weights are f32, the reference's f64).
TEST(SamplingReference, SequenceSamplerDrawsTheReferenceIds) {
  std::mt19937_64 rng(404);
  int rows = 0, excused = 0;
  for (int64_t vocab : {1, 2, 7, 64, 769, 5000, 49152}) {
    for (int t = 0; t < (vocab > 5000 ? 12 : 60); ++t) {
      const std::vector<float> row = random_row(rng, vocab, t);
      SampleRowSpec spec = random_spec(rng, vocab, t);
      spec.step %= 1000;
      sampling::SamplingParams params;
      params.temperature = spec.temperature;
      params.top_k = spec.top_k;
      params.top_p = spec.top_p;
      params.min_p = spec.min_p;
      params.seed = spec.seed;
      sampling::SequenceSampler s(params, 0, {});
      for (uint64_t i = 0; i < spec.step; ++i) s.skip_step();
      std::vector<float> scratch = row;
      const int32_t got = s.sample(scratch).token;
      const int32_t want = kr::sample_row(row.data(), vocab, spec);
      ++rows;
      if (got == want) continue;
      const auto kept = kr::sample_kept(row.data(), vocab, spec);
      const double d = kr::cdf_boundary_distance(kept, ks::philox_uniform(spec.seed, spec.step));
      EXPECT_LT(d, 1e-5) << "vocab " << vocab << " row " << t << ": " << got << " vs " << want;
      ++excused;
    }
  }
  EXPECT_LE(excused, 2) << "of " << rows;
  std::printf("[sampling] SequenceSampler vs the reference: %d of %d ids differ (near a CDF)\n",
              excused, rows);
}

TEST(SamplingReference, KeptDistributionMatchesTransformersFixture) {
  std::ifstream in(std::string(TESSERA_FIXTURES_DIR) + "/sampling/sampling_cases.json");
  std::stringstream ss;
  ss << in.rdbuf();
  const nlohmann::json doc = nlohmann::json::parse(ss.str());
  int used = 0;
  for (const auto& c : doc["cases"]) {
    // Only cases without penalties, biases or masks: Backend::sample has none of those.
    const auto& p = c["params"];
    if (!c["logit_bias"].empty() || !c["masked"].empty() || p.contains("repetition_penalty") ||
        p.contains("frequency_penalty") || p.contains("presence_penalty") ||
        c.contains("greedy_token")) {
      continue;
    }
    SCOPED_TRACE(c["name"].get<std::string>());
    std::vector<float> row;
    for (const auto& v : c["logits"]) row.push_back(static_cast<float>(v.get<double>()));
    SampleRowSpec spec;
    spec.temperature = p.value("temperature", 1.0f);
    spec.top_k = p.value("top_k", 0);
    spec.top_p = p.value("top_p", 1.0f);
    spec.min_p = p.value("min_p", 0.0f);
    const auto ids = c["kept"].get<std::vector<int32_t>>();
    const auto probs = c["kept_probs"].get<std::vector<double>>();
    std::vector<std::pair<int32_t, double>> want;
    for (size_t i = 0; i < ids.size(); ++i) want.emplace_back(ids[i], probs[i]);
    expect_same_distribution(kr::sample_kept(row.data(), static_cast<int64_t>(row.size()), spec),
                             want, 1e-5);
    ++used;
  }
  EXPECT_GE(used, 6);
}

// ---- The op contract and the host backends.

TEST(SampleOp, ChecksShapesAndParameters) {
  std::vector<float> logits(3 * 5, 0.5f);
  std::vector<int32_t> ids(3, -1);
  const Tensor l(logits.data(), DType::kF32, {3, 5});
  const Tensor o(ids.data(), DType::kI32, {3});
  std::vector<backend::SampleParams> params(3);
  EXPECT_TRUE(backend::check_sample(l, params, o).ok());
  auto fails = [&](std::vector<backend::SampleParams> ps, const Tensor& lt, const Tensor& ot,
                   const char* needle) {
    const Status st = backend::check_sample(lt, ps, ot);
    ASSERT_FALSE(st.ok()) << needle;
    EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
  };
  fails(std::vector<backend::SampleParams>(2), l, o, "params");
  fails(params, Tensor(logits.data(), DType::kF32, {3, 0}), o, "empty vocab");
  fails(params, l, Tensor(ids.data(), DType::kI32, {2}), "out_ids");
  fails(params, l, Tensor(ids.data(), DType::kF32, {3}), "out_ids");
  fails(params, Tensor(logits.data(), DType::kF32, {15}), o, "logits");
  auto with = [&](auto edit) {
    std::vector<backend::SampleParams> ps(3);
    edit(ps[1]);
    return ps;
  };
  fails(with([](auto& p) { p.temperature = -1.0f; }), l, o, "row 1 temperature");
  fails(with([](auto& p) { p.temperature = NAN; }), l, o, "temperature");
  fails(with([](auto& p) { p.top_p = 0.0f; }), l, o, "top_p");
  fails(with([](auto& p) { p.top_p = 1.5f; }), l, o, "top_p");
  fails(with([](auto& p) { p.min_p = -0.1f; }), l, o, "min_p");
  fails(with([](auto& p) { p.min_p = NAN; }), l, o, "min_p");
  EXPECT_TRUE(backend::check_sample(l, with([](auto& p) { p.top_k = -5; }), o).ok());
  EXPECT_TRUE(backend::check_sample(l, with([](auto& p) { p.top_k = 1000; }), o).ok());
}

TEST(SampleOp, HostBackendsDrawTheReferenceIds) {
  std::mt19937_64 rng(8);
  const int64_t rows = 9, vocab = 333, stride = 340;
  std::vector<float> logits(rows * stride, std::nanf(""));
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < vocab; ++i) logits[r * stride + i] = normal(rng);
  }
  const Tensor l = Tensor(logits.data(), DType::kF32, {rows, vocab}).with_strides({stride * 4, 4});
  std::vector<backend::SampleParams> params(rows);
  std::vector<int32_t> want(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const SampleRowSpec s = random_spec(rng, vocab, static_cast<int>(r));
    params[r] = {s.temperature, s.top_k, s.top_p, s.min_p, s.seed, s.step};
    want[r] = kr::sample_row(&logits[r * stride], vocab, s);
  }
  for (auto make : {backend::make_reference_backend, backend::make_cpu_backend}) {
    auto be = make();
    ASSERT_TRUE(be->supports(backend::Op::kSample, DType::kF32, DType::kF32));
    std::vector<int32_t> ids(rows, -7);
    ASSERT_TRUE(be->sample(l, params, Tensor(ids.data(), DType::kI32, {rows})).ok());
    EXPECT_EQ(ids, want) << be->name();
  }
}

}  // namespace
}  // namespace tessera

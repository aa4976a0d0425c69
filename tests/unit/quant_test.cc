// Quantization tests: ref::dequantize_row against the `gguf` package's dequantization of real
// SmolLM2 blocks (Q4_1, Q8_0) and seeded synthetic blocks (Q4_0, Q4_K, Q6_K) — fixtures from
// scripts/make_quant_fixtures.py — and error bounds of the ref quantizers' round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "kernels/common/types.h"
#include "kernels/ref/quant.h"
#include "kernels/ref/quantize.h"

namespace tessera::kernels {
namespace {

std::vector<char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

struct GoldenCase {
  const char* name;
  ElemType type;
};

class GoldenDequantTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenDequantTest, MatchesGgufPackage) {
  const GoldenCase c = GetParam();
  const std::string base = std::string(TESSERA_FIXTURES_DIR) + "/quant/" + c.name;
  const std::vector<char> blocks = read_file(base + ".blocks");
  const std::vector<char> golden_bytes = read_file(base + ".f32");
  ASSERT_FALSE(blocks.empty()) << "missing fixture " << base << ".blocks";
  ASSERT_EQ(golden_bytes.size() % 4, 0u);
  const int64_t n = static_cast<int64_t>(golden_bytes.size() / 4);
  const ElemTraits t = elem_traits(c.type);
  ASSERT_EQ(static_cast<int64_t>(blocks.size()), n / t.block_elems * t.block_bytes);
  std::vector<float> golden(n), got(n);
  std::memcpy(golden.data(), golden_bytes.data(), golden_bytes.size());
  ASSERT_TRUE(ref::dequantize_row(c.type, blocks.data(), got.data(), n));
  for (int64_t i = 0; i < n; ++i) {
    // NOTE: numpy may order the scale products differently; allow a few f32 ulps.
    ASSERT_NEAR(got[i], golden[i], 1e-6f * std::max(1.0f, std::fabs(golden[i])))
        << c.name << " value " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenDequantTest,
                         ::testing::Values(GoldenCase{"q4_1", ElemType::kQ4_1},
                                           GoldenCase{"q8_0", ElemType::kQ8_0},
                                           GoldenCase{"q4_0", ElemType::kQ4_0},
                                           GoldenCase{"q4_k", ElemType::kQ4_K},
                                           GoldenCase{"q6_k", ElemType::kQ6_K}),
                         [](const auto& info) { return std::string(info.param.name); });

struct RoundTripCase {
  const char* name;
  ElemType type;
  double max_rel_rms;  // rms(error) / rms(x) for Gaussian data
};

class RoundTripTest : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(RoundTripTest, ErrorWithinBound) {
  const RoundTripCase c = GetParam();
  const int64_t n = 4096;
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.3f, 1.5f);
  std::vector<float> x(n), y(n);
  for (float& v : x) v = dist(rng);
  x[7] = 0.0f;
  std::fill(x.begin() + 512, x.begin() + 768, 0.0f);  // an all-zero block (d = 0)
  const ElemTraits t = elem_traits(c.type);
  std::vector<char> q(n / t.block_elems * t.block_bytes);
  ASSERT_TRUE(ref::quantize_row(c.type, x.data(), q.data(), n));
  ASSERT_TRUE(ref::dequantize_row(c.type, q.data(), y.data(), n));
  double err = 0.0, ref = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(std::isfinite(y[i])) << i;
    err += (y[i] - x[i]) * (y[i] - x[i]);
    ref += x[i] * x[i];
  }
  for (int64_t i = 512; i < 768; ++i) EXPECT_EQ(y[i], 0.0f) << i;
  EXPECT_LE(std::sqrt(err / ref), c.max_rel_rms) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Types, RoundTripTest,
                         ::testing::Values(RoundTripCase{"q4_0", ElemType::kQ4_0, 0.12},
                                           RoundTripCase{"q4_1", ElemType::kQ4_1, 0.10},
                                           RoundTripCase{"q8_0", ElemType::kQ8_0, 0.01},
                                           RoundTripCase{"q8_1", ElemType::kQ8_1, 0.01},
                                           RoundTripCase{"q4_k", ElemType::kQ4_K, 0.12},
                                           RoundTripCase{"q6_k", ElemType::kQ6_K, 0.03},
                                           RoundTripCase{"q8_k", ElemType::kQ8_K, 0.01},
                                           RoundTripCase{"f16", ElemType::kF16, 1e-3},
                                           RoundTripCase{"bf16", ElemType::kBF16, 5e-3}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(QuantizeActivations, SumsMatchCodes) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-3.0f, 2.0f);
  std::vector<float> x(512);
  for (float& v : x) v = dist(rng);
  std::vector<BlockQ8_1> q1(512 / kQK8_1);
  ref::quantize_row_q8_1(x.data(), q1.data(), 512);
  for (const BlockQ8_1& b : q1) {
    int sum = 0;
    for (int8_t v : b.qs) {
      EXPECT_GE(v, -127);
      sum += v;
    }
    EXPECT_FLOAT_EQ(b.s, b.d * static_cast<float>(sum));
  }
  std::vector<BlockQ8_K> qk(512 / kQK_K);
  ref::quantize_row_q8_k(x.data(), qk.data(), 512);
  for (const BlockQ8_K& b : qk) {
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += b.qs[16 * g + j];
      EXPECT_EQ(b.bsums[g], sum) << g;
    }
  }
}

TEST(QuantizeRow, RejectsPartialBlocks) {
  std::vector<float> x(40, 1.0f);
  std::vector<char> q(1024);
  EXPECT_FALSE(ref::quantize_row(ElemType::kQ4_0, x.data(), q.data(), 40));
  EXPECT_FALSE(ref::quantize_row(ElemType::kI32, x.data(), q.data(), 32));
}

}  // namespace
}  // namespace tessera::kernels

// Rope against an outside oracle: inv_freq and the attention factor from HF transformers'
// ROPE_INIT_FUNCTIONS (scripts/make_rope_fixtures.py -> tests/fixtures/rope/). We rotate unit
// probes with the reference and CPU backends and read cos/sin back from the rotated values.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "kernels/ref/ops.h"
#include "tessera/backend/backend.h"

namespace tessera::backend {
namespace {

nlohmann::json load_fixtures() {
  std::ifstream in(std::string(TESSERA_FIXTURES_DIR) + "/rope/rope_fixtures.json");
  if (!in) return nullptr;
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

RopeParams params_from(const nlohmann::json& c, RopeParams::Style style) {
  RopeParams p;
  p.style = style;
  p.rot_dim = c["rot_dim"].get<int>();
  const auto& hf = c["params"];
  p.theta = hf["rope_theta"].get<float>();
  const std::string type = c["rope_type"].get<std::string>();
  if (type == "linear") p.scaling = RopeParams::Scaling::kLinear;
  if (type == "llama3") p.scaling = RopeParams::Scaling::kLlama3;
  if (type == "yarn") p.scaling = RopeParams::Scaling::kYarn;
  p.factor = hf.value("factor", 1.0f);
  p.low_freq_factor = hf.value("low_freq_factor", 1.0f);
  p.high_freq_factor = hf.value("high_freq_factor", 4.0f);
  p.original_max_position_embeddings = hf.value("original_max_position_embeddings", 8192);
  p.beta_fast = hf.value("beta_fast", 32.0f);
  p.beta_slow = hf.value("beta_slow", 1.0f);
  // NOTE: RopeParams::mscale is the final cos/sin factor (HF's attention_factor); the model
  // computes it from the config's mscale / mscale_all_dim.
  p.mscale = c["attention_factor"].get<float>();
  return p;
}

TEST(RopeFixtures, InvFreqMatchesTransformers) {
  const nlohmann::json doc = load_fixtures();
  if (doc.is_null()) GTEST_SKIP() << "tests/fixtures/rope/rope_fixtures.json is missing";
  for (const auto& c : doc["cases"]) {
    const RopeParams p = params_from(c, RopeParams::Style::kNeox);
    kernels::RopeSpec spec;
    spec.rot_dim = p.rot_dim;
    spec.theta = p.theta;
    spec.scaling = static_cast<kernels::RopeSpec::Scaling>(static_cast<int>(p.scaling));
    spec.factor = p.factor;
    spec.low_freq_factor = p.low_freq_factor;
    spec.high_freq_factor = p.high_freq_factor;
    spec.original_max_position_embeddings = p.original_max_position_embeddings;
    spec.beta_fast = p.beta_fast;
    spec.beta_slow = p.beta_slow;
    spec.mscale = p.mscale;
    std::vector<double> ours(p.rot_dim / 2);
    const double factor = kernels::ref::rope_inv_freq(spec, ours.data());
    const auto hf = c["inv_freq"].get<std::vector<double>>();
    ASSERT_EQ(hf.size(), ours.size()) << c["name"];
    for (size_t i = 0; i < hf.size(); ++i) {
      // HF computes in float32: allow a few float32 ulps.
      EXPECT_NEAR(ours[i], hf[i], 4e-7 * hf[i]) << c["name"] << " inv_freq[" << i << "]";
    }
    EXPECT_NEAR(factor, c["attention_factor"].get<double>(), 1e-6) << c["name"];
  }
}

// Rotating e_i (NeoX: x[i] = 1) gives x[i] = m cos(p f_i), x[i + half] = m sin(p f_i);
// interleaved: x[2i] = 1 gives x[2i] = m cos, x[2i + 1] = m sin. The tail past rot_dim stays.
TEST(RopeFixtures, RotationMatchesTransformersOnBothBackends) {
  const nlohmann::json doc = load_fixtures();
  if (doc.is_null()) GTEST_SKIP() << "tests/fixtures/rope/rope_fixtures.json is missing";
  const std::vector<int32_t> positions = {0, 1, 7, 100, 1000, 4095};
  std::vector<std::unique_ptr<Backend>> backends;
  backends.push_back(make_reference_backend());
  backends.push_back(make_cpu_backend());
  for (const auto& c : doc["cases"]) {
    const auto hf = c["inv_freq"].get<std::vector<double>>();
    const double m = c["attention_factor"].get<double>();
    const int64_t head_dim = c["head_dim"].get<int64_t>();
    const int half = static_cast<int>(hf.size());
    for (auto style : {RopeParams::Style::kNeox, RopeParams::Style::kInterleaved}) {
      const RopeParams p = params_from(c, style);
      for (auto& be : backends) {
        // One head per frequency: head i holds the probe for frequency i, plus a tail value.
        const int64_t num_tokens = static_cast<int64_t>(positions.size());
        std::vector<float> x(num_tokens * half * head_dim, 0.0f);
        for (int64_t t = 0; t < num_tokens; ++t) {
          for (int i = 0; i < half; ++i) {
            float* head = &x[(t * half + i) * head_dim];
            head[style == RopeParams::Style::kNeox ? i : 2 * i] = 1.0f;
            if (head_dim > 2 * half) head[head_dim - 1] = 0.5f;
          }
        }
        Tensor xt(x.data(), DType::kF32, {num_tokens, half, head_dim});
        ASSERT_TRUE(be->rope(xt, positions, p).ok());
        for (int64_t t = 0; t < num_tokens; ++t) {
          for (int i = 0; i < half; ++i) {
            const float* head = &x[(t * half + i) * head_dim];
            const bool neox = style == RopeParams::Style::kNeox;
            const double got_cos = head[neox ? i : 2 * i];
            const double got_sin = head[neox ? i + half : 2 * i + 1];
            const double angle = positions[t] * hf[i];
            // float32 inv_freq in HF: angle uncertainty ~ position * f * 2^-23.
            const double tol = 2e-6 + 4.0 * angle * 1.2e-7;
            EXPECT_NEAR(got_cos, m * std::cos(angle), tol)
                << be->name() << " " << c["name"] << " pos " << positions[t] << " i " << i;
            EXPECT_NEAR(got_sin, m * std::sin(angle), tol)
                << be->name() << " " << c["name"] << " pos " << positions[t] << " i " << i;
            if (head_dim > 2 * half) {
              EXPECT_EQ(head[head_dim - 1], 0.5f) << "values past rot_dim must not rotate";
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace tessera::backend

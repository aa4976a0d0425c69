// Golden checks of LlamaModel against HF transformers on tiny random Llamas
// (tests/fixtures/llama_tiny, made by scripts/make_llama_fixtures.py): teacher-forced f32
// logits within 1e-4 relative, identical greedy continuations, and chunked / incremental
// forwards that agree with one full pass.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "src/apps/perplexity.h"
#include "tessera/backend/backend.h"
#include "tessera/model/model_loader.h"
#include "tessera/sampling/sampler.h"
#include "tests/models/golden_fixture.h"

namespace tessera::model {
namespace {

const std::string kTinyDir = std::string(TESSERA_FIXTURES_DIR) + "/llama_tiny/";

using testing::Golden;
using testing::read_golden;
using testing::relative_error;

std::unique_ptr<backend::Backend> make_backend(const std::string& name) {
  return name == "cpu" ? backend::make_cpu_backend() : backend::make_reference_backend();
}

using Param = std::tuple<std::string, std::string>;  // (variant, backend)

class LlamaTinyTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    dir_ = kTinyDir + std::get<0>(GetParam());
    golden_ = read_golden(dir_);
    backend_ = make_backend(std::get<1>(GetParam()));
  }
  LoadedModel load(LlamaOptions options = {}) {
    options.max_context = 128;
    Result<LoadedModel> m = load_model(dir_, backend_.get(), options);
    EXPECT_TRUE(m.ok()) << m.status().message();
    return std::move(m).value();
  }

  std::string dir_;
  Golden golden_;
  std::unique_ptr<backend::Backend> backend_;
};

TEST_P(LlamaTinyTest, TeacherForcedLogitsMatchTransformers) {
  LoadedModel m = load();
  ASSERT_EQ(m.config.vocab_size, golden_.vocab);
  const int64_t n = golden_.tokens.size();
  OwnedTensor logits(DType::kF32, {n, golden_.vocab});
  ASSERT_TRUE(m.model->forward(golden_.tokens, 0, true, logits.view()).ok());
  EXPECT_LE(relative_error(logits.data_as<float>(), golden_.logits.data(), n * golden_.vocab),
            1e-4);
  EXPECT_EQ(m.model->num_cached_tokens(), n);
}

TEST_P(LlamaTinyTest, HalfPrecisionKvCacheStaysClose) {
  LlamaOptions f16;
  f16.kv_dtype = DType::kF16;
  LoadedModel m = load(f16);
  const int64_t n = golden_.tokens.size();
  OwnedTensor logits(DType::kF32, {n, golden_.vocab});
  ASSERT_TRUE(m.model->forward(golden_.tokens, 0, true, logits.view()).ok());
  EXPECT_LE(relative_error(logits.data_as<float>(), golden_.logits.data(), n * golden_.vocab),
            5e-3);
}

// Negative control: the golden is sensitive to the rope pairing (HF weights need neox).
TEST_P(LlamaTinyTest, WrongRopePairingIsDetected) {
  LlamaOptions wrong;
  wrong.rope_style = backend::RopeParams::Style::kInterleaved;
  LoadedModel m = load(wrong);
  const int64_t n = golden_.tokens.size();
  OwnedTensor logits(DType::kF32, {n, golden_.vocab});
  ASSERT_TRUE(m.model->forward(golden_.tokens, 0, true, logits.view()).ok());
  EXPECT_GT(relative_error(logits.data_as<float>(), golden_.logits.data(), n * golden_.vocab),
            1e-2);
}

TEST_P(LlamaTinyTest, ChunkedAndIncrementalForwardsAgree) {
  LlamaOptions small_chunks;
  small_chunks.max_chunk = 7;  // 64 tokens run as 10 chunks
  LoadedModel m = load(small_chunks);
  const int64_t n = golden_.tokens.size(), v = golden_.vocab;
  OwnedTensor logits(DType::kF32, {n, v});
  ASSERT_TRUE(m.model->forward(golden_.tokens, 0, true, logits.view()).ok());
  EXPECT_LE(relative_error(logits.data_as<float>(), golden_.logits.data(), n * v), 1e-4);

  // Prefill 20 tokens for the last row only, then one token at a time.
  m.model->reset();
  OwnedTensor row(DType::kF32, {1, v});
  std::span<const int32_t> toks(golden_.tokens);
  ASSERT_TRUE(m.model->forward(toks.first(20), 0, false, row.view()).ok());
  EXPECT_LE(relative_error(row.data_as<float>(), &golden_.logits[19 * v], v), 1e-4);
  for (int64_t i = 20; i < n; ++i) {
    ASSERT_TRUE(m.model->forward(toks.subspan(i, 1), i, false, row.view()).ok());
    ASSERT_LE(relative_error(row.data_as<float>(), &golden_.logits[i * v], v), 1e-4) << i;
  }
  // Rewinding to position 30 recomputes the same logits.
  ASSERT_TRUE(m.model->forward(toks.subspan(30, 5), 30, false, row.view()).ok());
  EXPECT_LE(relative_error(row.data_as<float>(), &golden_.logits[34 * v], v), 1e-4);
  EXPECT_EQ(m.model->num_cached_tokens(), 35);
}

TEST_P(LlamaTinyTest, GreedyContinuationMatchesTransformers) {
  LoadedModel m = load();
  const int64_t v = golden_.vocab;
  OwnedTensor row(DType::kF32, {1, v});
  std::span<const float> logits(row.data_as<float>(), v);
  ASSERT_TRUE(m.model->forward(golden_.prompt, 0, false, row.view()).ok());
  std::vector<int32_t> out;
  while (out.size() < golden_.greedy.size()) {
    int32_t next = sampling::argmax(logits);
    out.push_back(next);
    ASSERT_TRUE(m.model
                    ->forward(std::span<const int32_t>(&next, 1), m.model->num_cached_tokens(),
                              false, row.view())
                    .ok());
  }
  EXPECT_EQ(out, golden_.greedy);
}

TEST_P(LlamaTinyTest, RejectsBadArguments) {
  LoadedModel m = load();
  OwnedTensor row(DType::kF32, {1, golden_.vocab});
  std::vector<int32_t> bad = {1, static_cast<int32_t>(golden_.vocab)};
  EXPECT_FALSE(m.model->forward(bad, 0, false, row.view()).ok());
  std::vector<int32_t> ok = {1, 2};
  EXPECT_FALSE(m.model->forward(ok, 5, false, row.view()).ok());  // past the cache
  EXPECT_FALSE(m.model->forward(ok, 0, true, row.view()).ok());   // logits rows
  std::vector<int32_t> too_long(129, 1);
  EXPECT_FALSE(m.model->forward(too_long, 0, false, row.view()).ok());
}

// End to end through `tessera perplexity --json` (tokenizer.json, windows, scoring) against
// the same computation done with transformers.
TEST_P(LlamaTinyTest, PerplexityCommandMatchesTransformers) {
  std::ifstream in(dir_ + "/golden.json");
  const nlohmann::json ppl = nlohmann::json::parse(in)["perplexity"];
  apps::PerplexityOptions options;
  options.model.path = dir_;
  options.model.backend = std::get<1>(GetParam());
  options.model.threads = 1;
  options.file = dir_ + "/" + ppl["file"].get<std::string>();
  options.ctx = ppl["ctx"].get<int32_t>();
  options.json = true;
  ::testing::internal::CaptureStdout();
  const int rc = apps::run_perplexity(options);
  const std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json got = nlohmann::json::parse(out);
  EXPECT_EQ(got["tokens"].get<int64_t>(), ppl["tokens"].get<int64_t>());
  EXPECT_EQ(got["tokens_scored"].get<int64_t>(), ppl["tokens_scored"].get<int64_t>());
  const double want = ppl["value"].get<double>();
  EXPECT_NEAR(got["perplexity"].get<double>(), want, 1e-4 * want);
}

INSTANTIATE_TEST_SUITE_P(Variants, LlamaTinyTest,
                         ::testing::Combine(::testing::Values("base", "tied"),
                                            ::testing::Values("reference", "cpu")),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::get<1>(info.param);
                         });

// The "tied" model also ships as an f32 GGUF with llama.cpp's Q/K row permutation: the GGUF
// path (names, config from metadata, interleaved rope) must give transformers' logits too.
class LlamaTinyGgufTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaTinyGgufTest, PermutedGgufMatchesTransformers) {
  const Golden golden = read_golden(kTinyDir + "tied");
  auto be = make_backend(GetParam());
  LlamaOptions options;
  options.max_context = 64;
  Result<LoadedModel> m = load_model(kTinyDir + "tied/model.gguf", be.get(), options);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->format, WeightFormat::kGguf);
  EXPECT_TRUE(m->config.tie_word_embeddings);
  const int64_t n = golden.tokens.size(), v = golden.vocab;
  OwnedTensor logits(DType::kF32, {n, v});
  ASSERT_TRUE(m->model->forward(golden.tokens, 0, true, logits.view()).ok());
  EXPECT_LE(relative_error(logits.data_as<float>(), golden.logits.data(), n * v), 1e-4);

  options.rope_style = backend::RopeParams::Style::kNeox;  // wrong for permuted rows
  Result<LoadedModel> wrong = load_model(kTinyDir + "tied/model.gguf", be.get(), options);
  ASSERT_TRUE(wrong.ok());
  ASSERT_TRUE(wrong->model->forward(golden.tokens, 0, true, logits.view()).ok());
  EXPECT_GT(relative_error(logits.data_as<float>(), golden.logits.data(), n * v), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(Backends, LlamaTinyGgufTest, ::testing::Values("reference", "cpu"));

TEST(LlamaLoader, ReportsMissingPaths) {
  auto be = backend::make_reference_backend();
  Result<LoadedModel> m = load_model("/nonexistent/model.gguf", be.get());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("does not exist"), std::string::npos);
}

TEST(LlamaRope, StyleFollowsTheWeightFormat) {
  ModelConfig c;
  c.model_type = "llama";
  EXPECT_EQ(rope_style_for(WeightFormat::kGguf, c), backend::RopeParams::Style::kInterleaved);
  EXPECT_EQ(rope_style_for(WeightFormat::kSafetensors, c), backend::RopeParams::Style::kNeox);
  c.model_type = "qwen2";
  EXPECT_EQ(rope_style_for(WeightFormat::kGguf, c), backend::RopeParams::Style::kNeox);
  c.rope_scaling.rope_type = "dynamic";
  EXPECT_FALSE(rope_params_from_config(c, backend::RopeParams::Style::kNeox).ok());
}

// The cos/sin scale YaRN applies, as transformers' _compute_yarn_parameters returns it
// (values printed by transformers 5.24 for the same rope_scaling dicts).
TEST(LlamaRope, YarnAttentionFactorFollowsTransformers) {
  ModelConfig c;
  c.model_type = "llama";
  c.head_dim = 16;
  c.rope_scaling.rope_type = "yarn";
  c.rope_scaling.original_max_position_embeddings = 2048;
  c.rope_scaling.factor = 4.0;  // {factor: 4}: 0.1 ln 4 + 1
  Result<backend::RopeParams> p = rope_params_from_config(c, backend::RopeParams::Style::kNeox);
  ASSERT_TRUE(p.ok());
  EXPECT_NEAR(p->mscale, 1.138629436111989, 1e-6);
  c.rope_scaling.factor = 40.0;  // {factor: 40, mscale: 1, mscale_all_dim: 0.707}
  c.rope_scaling.mscale = 1.0;
  c.rope_scaling.mscale_all_dim = 0.707;
  EXPECT_NEAR(yarn_attention_factor(c.rope_scaling), 1.0857263992561355, 1e-9);
  c.rope_scaling.factor = 8.0;  // an explicit attention_factor wins
  c.rope_scaling.attention_factor = 0.9;
  EXPECT_NEAR(yarn_attention_factor(c.rope_scaling), 0.9, 1e-12);
}

}  // namespace
}  // namespace tessera::model

// Golden checks of LlamaModel on the SmolLM2-135M Q4_1 GGUF against llama.cpp
// (tests/fixtures/smollm2, made by scripts/make_llamacpp_fixtures.py): top-1 agreement,
// KL divergence from llama.cpp's next-token distribution, perplexity by llama.cpp's method,
// and our tokenizer against llama.cpp's tokens. Skipped when the model file is absent.
//
// NOTE: top-1 agreement is required on the positions where llama.cpp's top-1 leads its
// runner-up by >= 0.1 nats (about 91% of this text). On near-ties llama.cpp disagrees with
// itself: the same model with an f32 instead of f16 KV cache agrees on only 96.5% of all
// positions but 99.2% of the decisive ones. Overall agreement must still reach 95%.
//
// NOTE: the fixture keeps only llama.cpp's top-32 log-probs per position, so KL(P || Q) is
// estimated on 33 buckets: the 32 ids plus one "everything else" bucket holding the rest of
// each distribution's mass. Merging outcomes never increases KL, so this is a lower bound on
// the full-vocabulary KL; with >= 90% of P's mass in the top 32 the gap is negligible.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "src/apps/perplexity.h"
#include "tessera/backend/backend.h"
#include "tessera/model/model_loader.h"
#include "tessera/text/tokenizer.h"

namespace tessera::model {
namespace {

const std::string kFixtureDir = std::string(TESSERA_FIXTURES_DIR) + "/smollm2/";
constexpr double kDecisiveMargin = 0.1;  // nats between llama.cpp's top-1 and top-2

struct LlamaCppGolden {
  std::string model_path;
  std::vector<int32_t> tokens, top1;
  int topk = 0;
  std::vector<int32_t> topk_ids;     // [tokens, topk]
  std::vector<float> topk_logprobs;  // [tokens, topk]
  bool add_bos = false;
  int32_t ppl_ctx = 0;
  double ppl = 0.0;
};

template <typename T>
std::vector<T> read_raw(const std::string& path, size_t count) {
  std::vector<T> v(count);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), count * sizeof(T));
  if (!in) v.clear();
  return v;
}

class SmolLM2Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::ifstream in(kFixtureDir + "golden.json");
    if (!in) return;
    nlohmann::json j = nlohmann::json::parse(in);
    auto g = std::make_unique<LlamaCppGolden>();
    g->model_path = std::string(TESSERA_MODELS_DIR) + "/" + j["model"].get<std::string>();
    g->tokens = j["tokens"].get<std::vector<int32_t>>();
    g->top1 = j["top1"].get<std::vector<int32_t>>();
    g->topk = j["topk"].get<int>();
    g->add_bos = j["add_bos"].get<bool>();
    g->ppl_ctx = j["perplexity"]["ctx"].get<int32_t>();
    g->ppl = j["perplexity"]["value"].get<double>();
    const size_t n = g->tokens.size() * g->topk;
    g->topk_ids = read_raw<int32_t>(kFixtureDir + j["topk_ids_file"].get<std::string>(), n);
    g->topk_logprobs = read_raw<float>(kFixtureDir + j["topk_logprobs_file"].get<std::string>(), n);
    golden_ = g.release();
    if (!std::filesystem::exists(golden_->model_path)) return;
    backend_ = backend::make_cpu_backend().release();
    LlamaOptions options;
    options.max_context = static_cast<int32_t>(golden_->tokens.size());
    Result<LoadedModel> m = load_model(golden_->model_path, backend_, options);
    if (!m.ok()) {
      load_error_ = new std::string(m.status().message());
      return;
    }
    loaded_ = new LoadedModel(std::move(m).value());
  }
  static void TearDownTestSuite() {
    delete loaded_;
    delete backend_;
    delete golden_;
    delete load_error_;
    loaded_ = nullptr;
    backend_ = nullptr;
    golden_ = nullptr;
    load_error_ = nullptr;
  }
  void SetUp() override {
    if (golden_ == nullptr) GTEST_SKIP() << "no fixture: run scripts/make_llamacpp_fixtures.py";
    if (!std::filesystem::exists(golden_->model_path)) {
      GTEST_SKIP() << "model file absent: " << golden_->model_path;
    }
    ASSERT_EQ(load_error_, nullptr) << *load_error_;
    ASSERT_EQ(golden_->topk_ids.size(), golden_->tokens.size() * golden_->topk);
    ASSERT_EQ(golden_->topk_logprobs.size(), golden_->tokens.size() * golden_->topk);
  }

  static LlamaCppGolden* golden_;
  static backend::Backend* backend_;
  static LoadedModel* loaded_;
  static std::string* load_error_;
};

LlamaCppGolden* SmolLM2Test::golden_ = nullptr;
backend::Backend* SmolLM2Test::backend_ = nullptr;
LoadedModel* SmolLM2Test::loaded_ = nullptr;
std::string* SmolLM2Test::load_error_ = nullptr;

TEST_F(SmolLM2Test, MatchesLlamaCppDistribution) {
  const LlamaCppGolden& g = *golden_;
  Model& model = *loaded_->model;
  const int64_t n = g.tokens.size(), vocab = model.vocab_size();
  OwnedTensor logits(DType::kF32, {n, vocab});
  ASSERT_TRUE(model.forward(g.tokens, 0, true, logits.view()).ok());

  int64_t agree = 0, decisive = 0, decisive_agree = 0;
  double kl_sum = 0.0;
  std::vector<double> logq(vocab);
  for (int64_t t = 0; t < n; ++t) {
    const float* row = logits.data_as<float>() + t * vocab;
    const float max_logit = *std::max_element(row, row + vocab);
    double sum = 0.0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(row[i]) - max_logit);
    const double log_z = max_logit + std::log(sum);
    for (int64_t i = 0; i < vocab; ++i) logq[i] = row[i] - log_z;
    const bool same = (std::max_element(row, row + vocab) - row) == g.top1[t];
    agree += same;
    if (g.topk_logprobs[t * g.topk] - g.topk_logprobs[t * g.topk + 1] >= kDecisiveMargin) {
      ++decisive;
      decisive_agree += same;
    }

    double kl = 0.0, p_top = 0.0, q_top = 0.0;
    for (int k = 0; k < g.topk; ++k) {
      const double logp = g.topk_logprobs[t * g.topk + k];
      const int32_t id = g.topk_ids[t * g.topk + k];
      kl += std::exp(logp) * (logp - logq[id]);
      p_top += std::exp(logp);
      q_top += std::exp(logq[id]);
    }
    const double p_rest = std::max(1.0 - p_top, 0.0), q_rest = std::max(1.0 - q_top, 1e-12);
    if (p_rest > 0.0) kl += p_rest * std::log(p_rest / q_rest);
    kl_sum += kl;
  }
  const double agreement = static_cast<double>(agree) / n, mean_kl = kl_sum / n;
  const double decisive_agreement = static_cast<double>(decisive_agree) / decisive;
  std::cout << "top-1 agreement " << agreement << " (" << decisive_agreement << " on " << decisive
            << " decisive positions), mean KL " << mean_kl << " over " << n << " positions\n";
  EXPECT_GE(decisive, n * 8 / 10);
  EXPECT_GE(decisive_agreement, 0.98);
  EXPECT_GE(agreement, 0.95);
  EXPECT_LE(mean_kl, 0.01);
}

TEST_F(SmolLM2Test, PerplexityMatchesLlamaCpp) {
  const LlamaCppGolden& g = *golden_;
  std::optional<int32_t> bos;
  if (g.add_bos) bos = static_cast<int32_t>(loaded_->config.bos_token_id);
  Result<apps::PerplexityResult> r =
      apps::compute_perplexity(*loaded_->model, g.tokens, g.ppl_ctx, bos);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::cout << "perplexity " << r->perplexity << " (llama.cpp " << g.ppl << ")\n";
  EXPECT_NEAR(r->perplexity, g.ppl, 0.01 * g.ppl);
  EXPECT_EQ(r->tokens_scored,
            static_cast<int64_t>(g.tokens.size() / g.ppl_ctx) * (g.ppl_ctx - g.ppl_ctx / 2 - 1));
}

TEST_F(SmolLM2Test, TokenizerMatchesLlamaCpp) {
  Result<text::Tokenizer> tok = text::tokenizer_from_gguf(*loaded_->gguf);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  std::ifstream in(kFixtureDir + "text.txt", std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(tok->encode(text.str(), true), golden_->tokens);
  EXPECT_EQ(tok->add_bos(), golden_->add_bos);
}

}  // namespace
}  // namespace tessera::model

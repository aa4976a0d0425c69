// MoE ops beyond the registry: routing against an outside oracle (transformers' own router
// modules, scripts/make_moe_fixtures.py -> tests/fixtures/moe/), the op_checks contracts of
// moe_route / moe_grouped_matmul, and that the CPU grouped matmul runs one matmul per expert.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "src/backend/cpu_matmul.h"
#include "src/backend/cpu_moe.h"
#include "tessera/backend/backend.h"
#include "tessera/core/thread_pool.h"

namespace tessera::backend {
namespace {

nlohmann::json load_fixtures() {
  std::ifstream in(std::string(TESSERA_FIXTURES_DIR) + "/moe/moe_route_fixtures.json");
  if (!in) return nullptr;
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

TEST(MoeRouteFixtures, MatchesTransformersRouters) {
  const nlohmann::json doc = load_fixtures();
  if (doc.is_null()) GTEST_SKIP() << "tests/fixtures/moe/moe_route_fixtures.json is missing";
  ASSERT_GE(doc["cases"].size(), 8u);
  for (auto make : {make_reference_backend, make_cpu_backend}) {
    auto be = make();
    for (const auto& c : doc["cases"]) {
      SCOPED_TRACE(std::string(be->name()) + " " + c["name"].get<std::string>());
      const int64_t tokens = c["tokens"].get<int64_t>(), experts = c["experts"].get<int64_t>();
      MoeRouteParams p;
      p.scoring = c["scoring"] == "sigmoid" ? MoeRouteParams::Scoring::kSigmoid
                                            : MoeRouteParams::Scoring::kSoftmax;
      p.top_k = c["top_k"].get<int>();
      p.n_group = c["n_group"].get<int>();
      p.topk_group = c["topk_group"].get<int>();
      p.norm_topk_prob = c["norm_topk_prob"].get<bool>();
      p.routed_scaling_factor = c["routed_scaling_factor"].get<float>();
      std::vector<float> logits = c["logits"].get<std::vector<float>>();
      std::vector<float> bias = c["bias"].get<std::vector<float>>();
      ASSERT_EQ(static_cast<int64_t>(logits.size()), tokens * experts);
      Tensor lt(logits.data(), DType::kF32, {tokens, experts});
      Tensor bt = bias.empty() ? Tensor() : Tensor(bias.data(), DType::kF32, {experts});
      OwnedTensor ids(DType::kI32, {tokens, p.top_k});
      OwnedTensor weights(DType::kF32, {tokens, p.top_k});
      ASSERT_TRUE(be->moe_route(lt, bt, p, ids.view(), weights.view()).ok());

      const auto want_ids = c["ids"].get<std::vector<int32_t>>();
      const auto want_w = c["weights"].get<std::vector<float>>();
      for (int64_t t = 0; t < tokens; ++t) {
        // transformers' topk runs with sorted=False: compare (id -> weight) maps.
        std::map<int32_t, float> want, got;
        for (int j = 0; j < p.top_k; ++j) {
          want[want_ids[t * p.top_k + j]] = want_w[t * p.top_k + j];
          got[ids.data_as<int32_t>()[t * p.top_k + j]] = weights.data_as<float>()[t * p.top_k + j];
        }
        ASSERT_EQ(got.size(), want.size()) << "token " << t << ": repeated expert";
        for (const auto& [id, w] : want) {
          ASSERT_TRUE(got.count(id)) << "token " << t << ": expert " << id << " not chosen";
          EXPECT_NEAR(got[id], w, 2e-6f * std::max(1.0f, std::fabs(w))) << "token " << t;
        }
        // Our order: descending weight within a token (weights follow the selection score
        // except with a bias; check only the unbiased cases).
        if (bias.empty()) {
          const float* w = weights.data_as<float>() + t * p.top_k;
          for (int j = 1; j < p.top_k; ++j) EXPECT_GE(w[j - 1], w[j]) << "token " << t;
        }
      }
    }
  }
}

struct Bad {
  std::string what;
  Status status;
};

TEST(MoeOpChecks, BadCallsAreInvalidArgumentOnEveryBackend) {
  OwnedTensor logits(DType::kF32, {3, 16});
  OwnedTensor bias(DType::kF32, {16});
  OwnedTensor bias15(DType::kF32, {15});
  OwnedTensor ids(DType::kI32, {3, 4});
  OwnedTensor ids_f32(DType::kF32, {3, 4});
  OwnedTensor weights(DType::kF32, {3, 4});
  OwnedTensor weights2(DType::kF32, {3, 2});
  std::fill_n(logits.data_as<float>(), 48, 0.5f);
  std::fill_n(bias.data_as<float>(), 16, 0.0f);
  OwnedTensor x(DType::kF32, {3, 64});
  OwnedTensor w(DType::kQ8_0, {8, 5, 64});
  OwnedTensor w2(DType::kF32, {8, 64});
  OwnedTensor gm_out(DType::kF32, {3, 4, 5});
  OwnedTensor gm_out_bad(DType::kF32, {3, 4, 6});
  std::fill_n(x.data_as<float>(), 3 * 64, 1.0f);
  for (auto make : {make_reference_backend, make_cpu_backend}) {
    auto be = make();
    auto route = [&](MoeRouteParams p, const Tensor& b, const Tensor& i, const Tensor& wt) {
      return be->moe_route(logits.view(), b, p, i, wt);
    };
    MoeRouteParams ok;
    ok.scoring = MoeRouteParams::Scoring::kSigmoid;
    ok.top_k = 4;
    ok.n_group = 4;
    ok.topk_group = 2;
    EXPECT_TRUE(route(ok, bias.view(), ids.view(), weights.view()).ok());
    std::vector<Bad> bad;
    MoeRouteParams p = ok;
    p.top_k = 17;
    bad.push_back({"top_k > E", route(p, bias.view(), ids.view(), weights.view())});
    p = ok;
    p.n_group = 3;
    bad.push_back({"E % n_group", route(p, bias.view(), ids.view(), weights.view())});
    p = ok;
    p.topk_group = 5;
    bad.push_back({"topk_group > n_group", route(p, bias.view(), ids.view(), weights.view())});
    p = ok;
    p.topk_group = 1;
    p.top_k = 4;
    p.n_group = 8;  // one kept group of 2 experts cannot supply 4
    bad.push_back({"top_k > kept experts", route(p, bias.view(), ids.view(), weights.view())});
    bad.push_back({"bias shape", route(ok, bias15.view(), ids.view(), weights.view())});
    bad.push_back({"ids dtype", route(ok, bias.view(), ids_f32.view(), weights.view())});
    bad.push_back({"weights shape", route(ok, bias.view(), ids.view(), weights2.view())});
    p = ok;
    p.scoring = MoeRouteParams::Scoring::kSoftmax;
    bad.push_back({"bias with softmax", route(p, bias.view(), ids.view(), weights.view())});

    for (int32_t i = 0; i < 12; ++i) ids.data_as<int32_t>()[i] = i % 8;
    EXPECT_TRUE(be->moe_grouped_matmul(x.view(), w.view(), ids.view(), gm_out.view()).ok());
    bad.push_back({"w 2-D", be->moe_grouped_matmul(x.view(), w2.view(), ids.view(),
                                                   gm_out.view())});
    bad.push_back({"out shape", be->moe_grouped_matmul(x.view(), w.view(), ids.view(),
                                                       gm_out_bad.view())});
    for (int32_t id : {8, -1, 1 << 30}) {
      ids.data_as<int32_t>()[7] = id;
      bad.push_back({"id " + std::to_string(id),
                     be->moe_grouped_matmul(x.view(), w.view(), ids.view(), gm_out.view())});
    }
    for (const Bad& b : bad) {
      EXPECT_EQ(b.status.code(), StatusCode::kInvalidArgument) << be->name() << " " << b.what;
      EXPECT_NE(b.status.message().find("moe_"), std::string::npos) << b.status.message();
    }
  }
}

TEST(CpuMoeMatmul, OneMatmulPerActiveExpert) {
  OwnedTensor x(DType::kF32, {5, 32});
  OwnedTensor w(DType::kF32, {6, 3, 32});
  OwnedTensor ids(DType::kI32, {5, 2});
  OwnedTensor out(DType::kF32, {5, 2, 3});
  for (int i = 0; i < 5 * 32; ++i) x.data_as<float>()[i] = 0.01f * static_cast<float>(i % 17);
  for (int i = 0; i < 6 * 3 * 32; ++i) w.data_as<float>()[i] = 0.1f * static_cast<float>(i % 5);
  const int32_t chosen[] = {4, 0, 0, 4, 2, 4, 4, 0, 2, 2};  // experts 0, 2, 4; 1, 3, 5 unused
  std::copy(std::begin(chosen), std::end(chosen), ids.data_as<int32_t>());
  CpuMatmul matmul;
  CpuMoeMatmul moe;
  ASSERT_TRUE(moe.run(default_thread_pool(), matmul, x.view(), w.view(), ids.view(), out.view())
                  .ok());
  EXPECT_EQ(moe.last_expert_calls(), 3);
  for (int t = 0; t < 5; ++t) {
    for (int j = 0; j < 2; ++j) {
      for (int n = 0; n < 3; ++n) {
        double want = 0.0;
        for (int k = 0; k < 32; ++k) {
          want += static_cast<double>(x.data_as<float>()[t * 32 + k]) *
                  w.data_as<float>()[(chosen[t * 2 + j] * 3 + n) * 32 + k];
        }
        EXPECT_NEAR(out.data_as<float>()[(t * 2 + j) * 3 + n], want, 1e-4) << t << " " << j;
      }
    }
  }
}

}  // namespace
}  // namespace tessera::backend

// Golden checks of DeepseekModel against HF transformers on tiny random DeepSeek-V3,
// DeepSeek-V2 (V2-Lite shaped) and Mixtral models (tests/fixtures/*_tiny, made by
// scripts/make_deepseek_fixtures.py): teacher-forced f32 logits within 1e-4 relative, the
// greedy continuation, MLA absorbed == expanded, incremental decode, and packed multi-sequence
// forward_batch over a PagedKvCache (shuffled block tables) == the single-sequence forward.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "tessera/backend/backend.h"
#include "tessera/model/deepseek.h"
#include "tessera/model/model_loader.h"
#include "tessera/model/safetensors.h"
#include "tessera/sampling/sampler.h"
#include "tests/models/golden_fixture.h"

namespace tessera::model {
namespace {

using testing::Golden;
using testing::read_golden;
using testing::relative_error;

using Param = std::tuple<std::string, std::string>;  // (fixture, backend)

class DeepseekTinyTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    dir_ = std::string(TESSERA_FIXTURES_DIR) + "/" + std::get<0>(GetParam());
    golden_ = read_golden(dir_);
    backend_ = std::get<1>(GetParam()) == "cpu" ? backend::make_cpu_backend()
                                                : backend::make_reference_backend();
  }
  std::unique_ptr<DeepseekModel> load(DeepseekOptions options = {}) {
    options.max_context = 128;
    Result<ModelConfig> config = ModelConfig::from_hf_file(dir_ + "/config.json");
    EXPECT_TRUE(config.ok()) << config.status().message();
    config_ = *config;
    Result<SafetensorsModel> st = SafetensorsModel::open(dir_);
    EXPECT_TRUE(st.ok()) << st.status().message();
    std::shared_ptr<const WeightSource> w = make_safetensors_weight_source(
        std::make_shared<const SafetensorsModel>(std::move(st).value()), dir_);
    Result<std::unique_ptr<DeepseekModel>> m =
        DeepseekModel::create(*config, w, backend_.get(), options);
    EXPECT_TRUE(m.ok()) << m.status().message();
    return m.ok() ? std::move(m).value() : nullptr;
  }
  const float* golden_row(int64_t i) const { return &golden_.logits[i * golden_.vocab]; }

  std::string dir_;
  Golden golden_;
  ModelConfig config_;
  std::unique_ptr<backend::Backend> backend_;
};

TEST_P(DeepseekTinyTest, LoadsThroughLoadModel) {
  Result<LoadedModel> m = load_model(dir_, backend_.get());
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->config.vocab_size, golden_.vocab);
  EXPECT_NE(dynamic_cast<DeepseekModel*>(m->model.get()), nullptr);
}

TEST_P(DeepseekTinyTest, TeacherForcedLogitsMatchTransformers) {
  auto m = load();
  ASSERT_NE(m, nullptr);
  const int64_t n = golden_.tokens.size(), v = golden_.vocab;
  OwnedTensor logits(DType::kF32, {n, v});
  ASSERT_TRUE(m->forward(golden_.tokens, 0, true, logits.view()).ok());
  EXPECT_LE(relative_error(logits.data_as<float>(), golden_.logits.data(), n * v), 1e-4);
  EXPECT_EQ(m->num_cached_tokens(), n);
}

// MLA: the absorbed path (attention over the latent cache) and the expanded path (per-head
// K/V from kv_b_proj) give the same logits, both matching transformers.
TEST_P(DeepseekTinyTest, AbsorbedAndExpandedMlaAgree) {
  DeepseekOptions absorbed, expanded;
  absorbed.mla_path = DeepseekOptions::MlaPath::kAbsorbed;
  expanded.mla_path = DeepseekOptions::MlaPath::kExpanded;
  auto a = load(absorbed);
  auto e = load(expanded);
  ASSERT_TRUE(a && e);
  if (!a->is_mla()) GTEST_SKIP() << "not an MLA model";
  const int64_t n = golden_.tokens.size(), v = golden_.vocab;
  OwnedTensor la(DType::kF32, {n, v}), le(DType::kF32, {n, v});
  ASSERT_TRUE(a->forward(golden_.tokens, 0, true, la.view()).ok());
  EXPECT_FALSE(a->last_step_expanded());
  ASSERT_TRUE(e->forward(golden_.tokens, 0, true, le.view()).ok());
  EXPECT_TRUE(e->last_step_expanded());
  EXPECT_LE(relative_error(la.data_as<float>(), le.data_as<float>(), n * v), 1e-5);
  EXPECT_LE(relative_error(la.data_as<float>(), golden_.logits.data(), n * v), 1e-4);
  EXPECT_LE(relative_error(le.data_as<float>(), golden_.logits.data(), n * v), 1e-4);
}

TEST_P(DeepseekTinyTest, ChunkedPrefillAndDecodeMatch) {
  DeepseekOptions small;
  small.max_chunk = 7;
  auto m = load(small);
  ASSERT_NE(m, nullptr);
  const int64_t n = golden_.tokens.size(), v = golden_.vocab;
  OwnedTensor row(DType::kF32, {1, v});
  std::span<const int32_t> toks(golden_.tokens);
  ASSERT_TRUE(m->forward(toks.first(20), 0, false, row.view()).ok());
  EXPECT_LE(relative_error(row.data_as<float>(), golden_row(19), v), 1e-4);
  for (int64_t i = 20; i < n; ++i) {
    ASSERT_TRUE(m->forward(toks.subspan(i, 1), i, false, row.view()).ok());
    EXPECT_FALSE(m->last_step_expanded());
    ASSERT_LE(relative_error(row.data_as<float>(), golden_row(i), v), 1e-4) << i;
  }
  ASSERT_TRUE(m->forward(toks.subspan(30, 5), 30, false, row.view()).ok());  // rewind
  EXPECT_LE(relative_error(row.data_as<float>(), golden_row(34), v), 1e-4);
  EXPECT_EQ(m->num_cached_tokens(), 35);
}

TEST_P(DeepseekTinyTest, GreedyContinuationMatchesTransformers) {
  auto m = load();
  ASSERT_NE(m, nullptr);
  const int64_t v = golden_.vocab;
  OwnedTensor row(DType::kF32, {1, v});
  std::span<const float> logits(row.data_as<float>(), v);
  ASSERT_TRUE(m->forward(golden_.prompt, 0, false, row.view()).ok());
  std::vector<int32_t> out;
  while (out.size() < golden_.greedy.size()) {
    int32_t next = sampling::argmax(logits);
    out.push_back(next);
    ASSERT_TRUE(
        m->forward(std::span<const int32_t>(&next, 1), m->num_cached_tokens(), false, row.view())
            .ok());
  }
  EXPECT_EQ(out, golden_.greedy);
}

// Three sequences (prefixes of the golden tokens) packed through a PagedKvCache with shuffled
// block tables: a fresh-prefill step, a mixed step (decodes + a prefill chunk), a decode step.
// Every logits row matches transformers' row for that position.
TEST_P(DeepseekTinyTest, PackedForwardBatchMatchesSingleSequence) {
  auto m = load();
  ASSERT_NE(m, nullptr);
  const int32_t block_size = 4, num_blocks = 64, per_seq = 16;
  Result<PagedKvCache> cache = PagedKvCache::create(m->backend(), config_, num_blocks, block_size);
  ASSERT_TRUE(cache.ok()) << cache.status().message();
  if (m->is_mla()) {
    EXPECT_TRUE(cache->is_latent());
    EXPECT_EQ(cache->num_kv_heads(), 1);
    EXPECT_EQ(cache->head_dim(), config_.kv_lora_rank + config_.qk_rope_head_dim);
    EXPECT_EQ(cache->v(0).data(), cache->k(0).data());
  }
  std::vector<int32_t> physical(num_blocks);
  std::iota(physical.begin(), physical.end(), 0);
  std::shuffle(physical.begin(), physical.end(), std::mt19937(7));
  const int num_seqs = 3;
  std::vector<int32_t> done(num_seqs, 0);  // tokens already in the cache
  // New tokens per step and sequence.
  const std::vector<std::vector<int32_t>> steps = {{20, 33, 7}, {1, 8, 1}, {1, 1, 1}};
  const int64_t v = golden_.vocab;
  for (size_t step = 0; step < steps.size(); ++step) {
    ForwardBatch b;
    b.max_blocks_per_seq = per_seq;
    b.query_start.push_back(0);
    for (int s = 0; s < num_seqs; ++s) {
      const int32_t n = steps[step][s];
      for (int32_t i = 0; i < n; ++i) {
        const int32_t pos = done[s] + i;
        b.tokens.push_back(golden_.tokens[pos]);
        b.positions.push_back(pos);
        const int32_t block = physical[s * per_seq + pos / block_size];
        b.slot_mapping.push_back(block * block_size + pos % block_size);
        b.logits_indices.push_back(static_cast<int32_t>(b.tokens.size()) - 1);
      }
      b.query_start.push_back(static_cast<int32_t>(b.tokens.size()));
      b.seq_lens.push_back(done[s] + n);
      for (int32_t j = 0; j < per_seq; ++j) b.block_tables.push_back(physical[s * per_seq + j]);
    }
    OwnedTensor logits(DType::kF32, {b.num_logits(), v});
    Status st = m->forward_batch(b, *cache, logits.view());
    ASSERT_TRUE(st.ok()) << st.message();
    if (m->is_mla()) {
      EXPECT_EQ(m->last_step_expanded(), step == 0) << step;
    }
    int32_t row = 0;
    for (int s = 0; s < num_seqs; ++s) {
      for (int32_t i = 0; i < steps[step][s]; ++i, ++row) {
        const int32_t pos = done[s] + i;
        ASSERT_LE(relative_error(logits.data_as<float>() + row * v, golden_row(pos), v), 1e-4)
            << "step " << step << " seq " << s << " pos " << pos;
      }
      done[s] += steps[step][s];
    }
  }
}

TEST_P(DeepseekTinyTest, RejectsBadArguments) {
  auto m = load();
  ASSERT_NE(m, nullptr);
  OwnedTensor row(DType::kF32, {1, golden_.vocab});
  std::vector<int32_t> bad = {1, static_cast<int32_t>(golden_.vocab)};
  EXPECT_FALSE(m->forward(bad, 0, false, row.view()).ok());
  std::vector<int32_t> ok = {1, 2};
  EXPECT_FALSE(m->forward(ok, 5, false, row.view()).ok());
  EXPECT_FALSE(m->forward(ok, 0, true, row.view()).ok());
  std::vector<int32_t> too_long(129, 1);
  EXPECT_FALSE(m->forward(too_long, 0, false, row.view()).ok());
  // A Llama-geometry cache does not fit an MLA model (and vice versa).
  ModelConfig other = config_;
  other.model_type = m->is_mla() ? "llama" : "deepseek_v3";
  if (!m->is_mla()) {
    other.kv_lora_rank = 8;
    other.qk_rope_head_dim = 4;
  }
  Result<PagedKvCache> cache = PagedKvCache::create(m->backend(), other, 8, 4);
  ASSERT_TRUE(cache.ok());
  ForwardBatch b;
  b.tokens = {1};
  b.positions = {0};
  b.query_start = {0, 1};
  b.seq_lens = {1};
  b.block_tables = {0};
  b.max_blocks_per_seq = 1;
  b.slot_mapping = {0};
  b.logits_indices = {0};
  EXPECT_FALSE(m->forward_batch(b, *cache, row.view()).ok());
}

INSTANTIATE_TEST_SUITE_P(
    Variants, DeepseekTinyTest,
    ::testing::Combine(::testing::Values("deepseek_v3_tiny", "deepseek_v2_tiny", "mixtral_tiny"),
                       ::testing::Values("reference", "cpu")),
    [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

// The V3 model with FP8 e4m3 projections + weight_scale_inv (second shard) against its own
// dequantised transformers reference: logits within 1e-3 relative, same greedy tokens.
TEST(DeepseekFp8Test, BlockScaledCheckpointMatchesDequantisedReference) {
  const std::string dir = std::string(TESSERA_FIXTURES_DIR) + "/deepseek_v3_fp8_tiny";
  const Golden golden = read_golden(dir);
  const int64_t n = golden.tokens.size(), v = golden.vocab;
  for (const char* name : {"reference", "cpu"}) {
    SCOPED_TRACE(name);
    auto be = std::string(name) == "cpu" ? backend::make_cpu_backend()
                                         : backend::make_reference_backend();
    LlamaOptions options;
    options.max_context = 128;
    Result<LoadedModel> m = load_model(dir, be.get(), options);
    ASSERT_TRUE(m.ok()) << m.status().message();
    OwnedTensor logits(DType::kF32, {n, v});
    Status st = m->model->forward(golden.tokens, 0, true, logits.view());
    if (st.code() == StatusCode::kUnimplemented) GTEST_SKIP() << st.message();
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_LE(relative_error(logits.data_as<float>(), golden.logits.data(), n * v), 1e-3);
    OwnedTensor row(DType::kF32, {1, v});
    std::span<const float> last(row.data_as<float>(), v);
    ASSERT_TRUE(m->model->forward(golden.prompt, 0, false, row.view()).ok());
    std::vector<int32_t> out;
    while (out.size() < golden.greedy.size()) {
      int32_t next = sampling::argmax(last);
      out.push_back(next);
      ASSERT_TRUE(m->model
                      ->forward(std::span<const int32_t>(&next, 1), m->model->num_cached_tokens(),
                                false, row.view())
                      .ok());
    }
    EXPECT_EQ(out, golden.greedy);
  }
}

}  // namespace
}  // namespace tessera::model

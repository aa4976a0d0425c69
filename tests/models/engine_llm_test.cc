// tessera::LLM on SmolLM2 (skipped when the model file is absent): generate, chat with the
// model's template, streaming equal to the gathered result, token-id prompts, and errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tessera/engine/llm.h"
#include "tests/models/engine_test_util.h"

namespace tessera {
namespace {

class LlmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(engine::testing::kSmolLM2)) return;
    LlmOptions options;
    options.threads = 2;
    options.max_model_len = 512;
    options.num_kv_blocks = 256;
    Result<std::unique_ptr<LLM>> llm = LLM::from_pretrained(engine::testing::kSmolLM2, options);
    ASSERT_TRUE(llm.ok()) << llm.status().message();
    llm_ = std::move(llm).value().release();
  }
  static void TearDownTestSuite() {
    delete llm_;
    llm_ = nullptr;
  }
  void SetUp() override {
    if (llm_ == nullptr) GTEST_SKIP() << engine::testing::kSmolLM2 << " is absent";
  }
  static GenerateOptions greedy(int max_tokens) {
    GenerateOptions o;
    o.sampling.temperature = 0.0f;
    o.max_tokens = max_tokens;
    return o;
  }
  static LLM* llm_;
};
LLM* LlmTest::llm_ = nullptr;

TEST_F(LlmTest, GenerateCompletesAFact) {
  Result<std::vector<GenerateResult>> r =
      llm_->generate({"The capital of France is", "1, 2, 3, 4,"}, greedy(8));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_NE((*r)[0].completions[0].text.find("Paris"), std::string::npos)
      << (*r)[0].completions[0].text;
  EXPECT_NE((*r)[1].completions[0].text.find("5"), std::string::npos)
      << (*r)[1].completions[0].text;
  EXPECT_EQ((*r)[0].completions[0].token_ids.size(), 8u);
  EXPECT_EQ((*r)[0].completions[0].finish_reason, engine::FinishReason::kLength);
  // The same prompt as token ids gives the same tokens.
  std::vector<TokensPrompt> ids = {{(*r)[0].prompt_token_ids}};
  Result<std::vector<GenerateResult>> again = llm_->generate(ids, greedy(8));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].completions[0].token_ids, (*r)[0].completions[0].token_ids);
}

TEST_F(LlmTest, ChatUsesTheTemplateAndStopsAtTheTurnEnd) {
  Result<GenerateResult> r =
      llm_->chat({{"user", "What is the capital of France? Answer in one word."}}, greedy(32));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NE(r->completions[0].text.find("Paris"), std::string::npos) << r->completions[0].text;
  EXPECT_EQ(r->completions[0].finish_reason, engine::FinishReason::kStop);
  Result<std::string> text = llm_->apply_chat_template(
      nlohmann::ordered_json::array({{{"role", "user"}, {"content", "hi"}}}));
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find("<|im_start|>user\nhi<|im_end|>"), std::string::npos) << *text;
}

TEST_F(LlmTest, StreamedDeltasAddUpToTheResult) {
  std::string streamed;
  int num_deltas = 0;
  GenerateOptions o = greedy(12);
  o.sampling.logprobs = true;
  o.sampling.top_logprobs = 2;
  Result<GenerateResult> r =
      llm_->generate_stream("Once upon a time", o, [&](const engine::CompletionDelta& d) {
        streamed += d.text;
        ++num_deltas;
      });
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(streamed, r->completions[0].text);
  EXPECT_GE(num_deltas, 2);
  ASSERT_EQ(r->completions[0].logprobs.size(), r->completions[0].token_ids.size());
  for (size_t i = 0; i < r->completions[0].logprobs.size(); ++i) {
    const engine::SampledLogprobs& lp = r->completions[0].logprobs[i];
    EXPECT_EQ(lp.sampled.token, r->completions[0].token_ids[i]);
    EXPECT_LE(lp.sampled.logprob, 0.0f);
    ASSERT_EQ(lp.top.size(), 2u);
    EXPECT_EQ(lp.top[0].token, lp.sampled.token);  // greedy picks the most likely
  }
}

TEST_F(LlmTest, InvalidRequestsFailWholly) {
  GenerateOptions o = greedy(600);
  Result<std::vector<GenerateResult>> r = llm_->generate({"hello"}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("maximum context length is 512"), std::string::npos)
      << r.status().message();
  o = greedy(4);
  o.sampling.top_p = 1.5f;
  EXPECT_FALSE(llm_->generate({"hello"}, o).ok());
}

}  // namespace
}  // namespace tessera

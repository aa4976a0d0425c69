// OpenAI request bodies -> engine requests: every field mapped, every rejection a 4xx with the
// offending `param`, the context-length error in OpenAI's words.
#include <gtest/gtest.h>

#include "tests/unit/api_test_util.h"

namespace tessera::api {
namespace {

using testing::error_of;
using testing::json;
using testing::make_test_model;
using testing::ok_request;

class ApiRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = make_test_model();
    ASSERT_NE(model_, nullptr);
  }
  const ServedModel& served() const { return model_->served; }
  Prepared completion(const json& body) { return prepare_completion(body.dump(), served()); }
  Prepared chat(const json& body) { return prepare_chat_completion(body.dump(), served()); }
  json chat_body() const {
    return {{"model", "smol"}, {"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})}};
  }
  std::unique_ptr<testing::TestModel> model_;
};

TEST_F(ApiRequestTest, CompletionMapsEveryField) {
  const json body = {{"model", "smol"},
                     {"prompt", "Hello world"},
                     {"max_tokens", 7},
                     {"temperature", 0.5},
                     {"top_p", 0.9},
                     {"n", 3},
                     {"stop", json::array({"\n", "END"})},
                     {"seed", -5},
                     {"presence_penalty", 0.25},
                     {"frequency_penalty", -0.5},
                     {"logit_bias", {{"42", 5}, {"7", -100}}},
                     {"logprobs", 2},
                     {"user", "someone"},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}},
                     {"top_k", 20},
                     {"min_p", 0.05},
                     {"repetition_penalty", 1.1},
                     {"stop_token_ids", json::array({5, 6})},
                     {"ignore_eos", true},
                     {"min_tokens", 2},
                     {"priority", -3},
                     {"skip_special_tokens", false},
                     {"include_stop_str_in_output", true},
                     {"some_unknown_field", {1, 2, 3}}};
  const Prepared prepared = completion(body);
  const PreparedRequest p = ok_request(prepared);
  ASSERT_EQ(p.requests.size(), 1u);
  EXPECT_EQ(p.endpoint, Endpoint::kCompletions);
  EXPECT_TRUE(p.stream);
  EXPECT_TRUE(p.include_usage);
  const engine::GenerateRequest& r = p.requests[0];
  EXPECT_EQ(r.prompt_tokens, model_->tokenizer->encode("Hello world", true));
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.n, 3);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.top_k, 20);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(r.sampling.repetition_penalty, 1.1f);
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 0.25f);
  EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, -0.5f);
  ASSERT_TRUE(r.sampling.seed.has_value());
  EXPECT_EQ(*r.sampling.seed, static_cast<uint64_t>(int64_t{-5}));
  ASSERT_EQ(r.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(r.sampling.logit_bias[0], (std::pair<int32_t, float>{42, 5.0f}));
  EXPECT_EQ(r.sampling.logit_bias[1], (std::pair<int32_t, float>{7, -100.0f}));
  EXPECT_TRUE(r.sampling.logprobs);
  EXPECT_EQ(r.sampling.top_logprobs, 2);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_EQ(r.stop_token_ids, (std::vector<int32_t>{5, 6}));
  EXPECT_TRUE(r.ignore_eos);
  EXPECT_EQ(r.min_tokens, 2);
  EXPECT_EQ(r.priority, -3);
  EXPECT_FALSE(r.skip_special_tokens);
  EXPECT_TRUE(r.include_stop_str_in_output);
}

TEST_F(ApiRequestTest, CompletionDefaults) {
  const PreparedRequest p = ok_request(completion({{"prompt", "x"}}));  // model may be absent
  ASSERT_EQ(p.requests.size(), 1u);
  const engine::GenerateRequest& r = p.requests[0];
  EXPECT_FALSE(r.max_tokens.has_value());  // until the context limit
  EXPECT_EQ(r.n, 1);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_FALSE(r.sampling.logprobs);
  EXPECT_FALSE(p.stream);
  EXPECT_TRUE(r.skip_special_tokens);
}

TEST_F(ApiRequestTest, CompletionPromptForms) {
  const auto one = model_->tokenizer->encode("a b", true);
  EXPECT_EQ(ok_request(completion({{"prompt", "a b"}})).requests[0].prompt_tokens, one);
  const PreparedRequest strings = ok_request(completion({{"prompt", {"a b", "c"}}, {"n", 2}}));
  ASSERT_EQ(strings.requests.size(), 2u);
  EXPECT_EQ(strings.requests[1].prompt_tokens, model_->tokenizer->encode("c", true));
  EXPECT_EQ(strings.requests[1].n, 2);
  EXPECT_EQ(ok_request(completion({{"prompt", {1, 2, 3}}})).requests[0].prompt_tokens,
            (std::vector<int32_t>{1, 2, 3}));
  const PreparedRequest lists = ok_request(completion({{"prompt", {{1, 2}, {3}}}}));
  ASSERT_EQ(lists.requests.size(), 2u);
  EXPECT_EQ(lists.requests[1].prompt_tokens, (std::vector<int32_t>{3}));
  // Integral floats pass as ints (pydantic's lax mode), fractions do not.
  EXPECT_EQ(ok_request(completion({{"prompt", {1.0, 2}}})).requests[0].prompt_tokens,
            (std::vector<int32_t>{1, 2}));
}

TEST_F(ApiRequestTest, MaxCompletionTokensWins) {
  const auto r = ok_request(chat([&] {
                   json b = chat_body();
                   b["max_tokens"] = 10;
                   b["max_completion_tokens"] = 12;
                   return b;
                 }()))
                     .requests[0];
  EXPECT_EQ(r.max_tokens, 12);
}

struct BadCase {
  const char* name;
  json patch;  // merged into a valid completion body
  const char* param;
  int status = 400;
};

TEST_F(ApiRequestTest, CompletionRejectionsNameTheParam) {
  const std::vector<BadCase> cases = {
      {"type temperature", {{"temperature", "hot"}}, "temperature"},
      {"range temperature", {{"temperature", -1}}, "temperature"},
      {"range top_p 0", {{"top_p", 0}}, "top_p"},
      {"range top_p", {{"top_p", 1.5}}, "top_p"},
      {"range min_p", {{"min_p", 2}}, "min_p"},
      {"range rep", {{"repetition_penalty", 0}}, "repetition_penalty"},
      {"range presence", {{"presence_penalty", 3}}, "presence_penalty"},
      {"range frequency", {{"frequency_penalty", -2.5}}, "frequency_penalty"},
      {"type n", {{"n", "two"}}, "n"},
      {"range n", {{"n", 0}}, "n"},
      {"fraction n", {{"n", 1.5}}, "n"},
      {"huge n", {{"n", 1e300}}, "n"},
      {"range max_tokens", {{"max_tokens", 0}}, "max_tokens"},
      {"huge max_tokens", {{"max_tokens", 18446744073709551615ull}}, "max_tokens"},
      {"neg max_completion_tokens", {{"max_completion_tokens", -1}}, "max_completion_tokens"},
      {"type stop", {{"stop", 5}}, "stop"},
      {"type stop entry", {{"stop", {"a", 1}}}, "stop"},
      {"empty stop", {{"stop", ""}}, "stop"},
      {"type seed", {{"seed", "x"}}, "seed"},
      {"huge seed", {{"seed", 1e30}}, "seed"},
      {"type logit_bias", {{"logit_bias", {1, 2}}}, "logit_bias"},
      {"key logit_bias", {{"logit_bias", {{"abc", 1}}}}, "logit_bias"},
      {"vocab logit_bias", {{"logit_bias", {{"999999", 1}}}}, "logit_bias"},
      {"value logit_bias", {{"logit_bias", {{"1", 101}}}}, "logit_bias"},
      {"range logprobs", {{"logprobs", 21}}, "logprobs"},
      {"type logprobs", {{"logprobs", true}}, "logprobs"},
      {"type echo", {{"echo", "yes"}}, "echo"},
      {"echo+logprobs", {{"echo", true}, {"logprobs", 1}}, "echo"},
      {"type stream", {{"stream", 1}}, "stream"},
      {"stream_options without stream",
       {{"stream_options", {{"include_usage", true}}}},
       "stream_options"},
      {"type include_usage",
       {{"stream", true}, {"stream_options", {{"include_usage", 1}}}},
       "stream_options.include_usage"},
      {"range top_k", {{"top_k", -2}}, "top_k"},
      {"type stop_token_ids", {{"stop_token_ids", 5}}, "stop_token_ids"},
      {"vocab stop_token_ids", {{"stop_token_ids", {1000000}}}, "stop_token_ids"},
      {"min > max", {{"min_tokens", 9}, {"max_tokens", 3}}, "min_tokens"},
      {"type ignore_eos", {{"ignore_eos", "true"}}, "ignore_eos"},
      {"type priority", {{"priority", 0.5}}, "priority"},
      {"type user", {{"user", 5}}, "user"},
      {"type model", {{"model", 5}}, "model"},
      {"unknown model", {{"model", "gpt-4"}}, "model", 404},
      {"prompt missing", {{"prompt", nullptr}}, "prompt"},
      {"prompt type", {{"prompt", 5}}, "prompt"},
      {"prompt empty list", {{"prompt", json::array()}}, "prompt"},
      {"prompt empty string", {{"prompt", ""}}, "prompt"},
      {"prompt mixed", {{"prompt", {"a", 1}}}, "prompt"},
      {"prompt bad token", {{"prompt", {1, -1}}}, "prompt"},
      {"prompt vocab", {{"prompt", {49152}}}, "prompt"},
      {"prompt nested mixed", {{"prompt", {{1}, 2}}}, "prompt"},
      {"best_of", {{"best_of", 3}}, "best_of"},
      {"suffix", {{"suffix", "tail"}}, "suffix"},
      {"response_format", {{"response_format", {{"type", "regex"}}}}, "response_format"},
      {"context", {{"max_tokens", 5000}}, "prompt"},
  };
  for (const BadCase& c : cases) {
    json body = {{"model", "smol"}, {"prompt", "Hello"}};
    for (auto it = c.patch.begin(); it != c.patch.end(); ++it) body[it.key()] = it.value();
    const ApiError e = error_of(completion(body));
    EXPECT_EQ(e.http_status, c.status) << c.name;
    EXPECT_EQ(e.param, c.param) << c.name << ": " << e.message;
    EXPECT_FALSE(e.message.empty()) << c.name;
    // The error object parses back in OpenAI's shape.
    const json parsed = json::parse(e.to_json());
    EXPECT_TRUE(parsed["error"]["message"].is_string()) << c.name;
    EXPECT_TRUE(parsed["error"]["type"].is_string()) << c.name;
    EXPECT_TRUE(parsed["error"]["param"].is_string()) << c.name;
  }
}

TEST_F(ApiRequestTest, BadBodies) {
  for (const char* body : {"", "{", "[1,2]", "\"text\"", "null", "{\"prompt\": \"a\",}",
                           "{\"prompt\": \"\xff\xfe\"}"}) {
    const ApiError e = error_of(prepare_completion(body, served()));
    EXPECT_EQ(e.http_status, 400) << body;
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_EQ(error_of(prepare_chat_completion(body, served())).http_status, 400) << body;
  }
  std::string deep(100000, '[');
  EXPECT_EQ(error_of(prepare_completion(deep, served())).http_status, 400);
  const std::string deep_prompt =
      "{\"prompt\": " + std::string(500, '[') + "1" + std::string(500, ']') + "}";
  EXPECT_EQ(error_of(prepare_completion(deep_prompt, served())).http_status, 400);
}

TEST_F(ApiRequestTest, UnknownModelIs404) {
  json body = chat_body();
  body["model"] = "other";
  const ApiError e = error_of(chat(body));
  EXPECT_EQ(e.http_status, 404);
  EXPECT_EQ(e.code, "model_not_found");
  EXPECT_EQ(e.type, "not_found_error");
  const json parsed = json::parse(e.to_json());
  EXPECT_EQ(parsed["error"]["code"], "model_not_found");
}

TEST_F(ApiRequestTest, ContextLengthErrorInOpenAIWords) {
  json body = chat_body();
  body["max_tokens"] = 2040;
  const Prepared prepared = chat(body);
  const ApiError e = error_of(prepared);
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.code, "context_length_exceeded");
  EXPECT_EQ(e.param, "messages");
  // The prompt size, as the template renders it.
  const size_t prompt =
      model_->tokenizer
          ->encode(*model_->chat_template->render(body["messages"], nullptr, true, json::object()),
                   false)
          .size();
  EXPECT_EQ(e.message,
            "This model's maximum context length is 2048 tokens. However, you "
            "requested " +
                std::to_string(prompt + 2040) + " tokens (" + std::to_string(prompt) +
                " in the messages, 2040 in the completion). Please reduce the "
                "length of the messages or completion.");
  // Without max_tokens, only a prompt that fills the context is refused.
  json long_body = {{"prompt", std::vector<int>(2048, 5)}};
  const ApiError full = error_of(completion(long_body));
  EXPECT_EQ(full.code, "context_length_exceeded");
  EXPECT_NE(full.message.find("maximum context length is 2048 tokens"), std::string::npos);
  long_body["prompt"] = std::vector<int>(2047, 5);
  EXPECT_FALSE(ok_request(completion(long_body)).requests[0].max_tokens.has_value());
}

TEST_F(ApiRequestTest, ChatPromptIsTheRenderedTemplate) {
  json body = chat_body();
  body["messages"] = json::array({{{"role", "system"}, {"content", "Be brief."}},
                                  {{"role", "user"}, {"content", "Hi"}},
                                  {{"role", "assistant"}, {"content", "Hello!"}},
                                  {{"role", "user"},
                                   {"content", json::array({{{"type", "text"}, {"text", "a"}},
                                                            {{"type", "text"}, {"text", "b"}}})}}});
  const PreparedRequest p = ok_request(chat(body));
  ASSERT_EQ(p.requests.size(), 1u);
  const std::string expected =
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
      "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\na\nb<|im_end|>\n"
      "<|im_start|>assistant\n";
  EXPECT_EQ(p.requests[0].prompt_tokens, model_->tokenizer->encode(expected, false));
  EXPECT_EQ(p.endpoint, Endpoint::kChatCompletions);
}

TEST_F(ApiRequestTest, ChatLogprobsAndRejections) {
  json body = chat_body();
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  const auto r = ok_request(chat(body)).requests[0];
  EXPECT_TRUE(r.sampling.logprobs);
  EXPECT_EQ(r.sampling.top_logprobs, 3);

  const std::vector<BadCase> cases = {
      {"top without logprobs", {{"top_logprobs", 2}}, "top_logprobs"},
      {"top range", {{"logprobs", true}, {"top_logprobs", 21}}, "top_logprobs"},
      {"logprobs type", {{"logprobs", 1}}, "logprobs"},
      {"messages missing", {{"messages", nullptr}}, "messages"},
      {"messages type", {{"messages", "hi"}}, "messages"},
      {"messages empty", {{"messages", json::array()}}, "messages"},
      {"message type", {{"messages", {1}}}, "messages[0]"},
      {"role missing", {{"messages", {{{"content", "x"}}}}}, "messages[0].role"},
      {"content type", {{"messages", {{{"role", "user"}, {"content", 5}}}}}, "messages[0].content"},
      {"image part",
       {{"messages",
         {{{"role", "user"}, {"content", {{{"type", "image_url"}, {"image_url", "x"}}}}}}}},
       "messages[0].content"},
      {"tools type", {{"tools", "x"}}, "tools"},
      {"tool no function", {{"tools", {{{"type", "function"}}}}}, "tools"},
      {"tool_choice without tools", {{"tool_choice", "required"}}, "tool_choice"},
      {"tool_choice bad", {{"tool_choice", "sometimes"}}, "tool_choice"},
      {"tool_choice unknown name",
       {{"tools", {{{"type", "function"}, {"function", {{"name", "f"}}}}}},
        {"tool_choice", {{"type", "function"}, {"function", {{"name", "g"}}}}}},
       "tool_choice"},
      {"chat_template_kwargs", {{"chat_template_kwargs", 3}}, "chat_template_kwargs"},
  };
  for (const BadCase& c : cases) {
    json b = chat_body();
    for (auto it = c.patch.begin(); it != c.patch.end(); ++it) b[it.key()] = it.value();
    const ApiError e = error_of(chat(b));
    EXPECT_EQ(e.http_status, c.status) << c.name;
    EXPECT_EQ(e.param, c.param) << c.name << ": " << e.message;
  }
}

TEST_F(ApiRequestTest, ChatWithoutTemplateIs400) {
  ServedModel no_template = served();
  no_template.chat_template = nullptr;
  const ApiError e = error_of(prepare_chat_completion(chat_body().dump(), no_template));
  EXPECT_EQ(e.http_status, 400);
}

TEST_F(ApiRequestTest, ErrorFromStatus) {
  EXPECT_EQ(error_from_status(invalid_argument("bad")).http_status, 400);
  const ApiError ctx = error_from_status(
      invalid_argument("This model's maximum context length is 5 tokens. However, ..."));
  EXPECT_EQ(ctx.code, "context_length_exceeded");
  EXPECT_EQ(error_from_status(make_error(StatusCode::kResourceExhausted, "full")).http_status, 429);
  EXPECT_EQ(error_from_status(make_error(StatusCode::kUnavailable, "draining")).http_status, 503);
  const ApiError internal = error_from_status(make_error(StatusCode::kInternal, "boom"));
  EXPECT_EQ(internal.http_status, 500);
  EXPECT_EQ(internal.type, "server_error");
  const json parsed = json::parse(internal.to_json());
  EXPECT_TRUE(parsed["error"]["param"].is_null());
  EXPECT_TRUE(parsed["error"]["code"].is_null());
}

}  // namespace
}  // namespace tessera::api

// Engine outputs -> OpenAI bodies and SSE chunks, parsed back and checked key by key and type by
// type as the openai client reads them; plus /v1/models, /tokenize, /detokenize and the SmolLM2
// chat prompt from the real GGUF.
#include <gtest/gtest.h>

#include <filesystem>

#include "tessera/model/gguf.h"
#include "tests/unit/api_test_util.h"

namespace tessera::api {
namespace {

using testing::error_of;
using testing::json;
using testing::make_test_model;
using testing::ok_request;

engine::CompletionDelta delta(int index, std::string text, std::vector<int32_t> ids,
                              std::optional<engine::FinishReason> reason = std::nullopt) {
  engine::CompletionDelta d;
  d.index = index;
  d.text = std::move(text);
  d.token_ids = std::move(ids);
  d.finish_reason = reason;
  return d;
}

engine::RequestOutput output(std::vector<engine::CompletionDelta> deltas, bool finished,
                             int32_t generated) {
  engine::RequestOutput out;
  out.deltas = std::move(deltas);
  out.finished = finished;
  out.num_prompt_tokens = 4;
  out.num_cached_prompt_tokens = 2;
  out.num_generated_tokens = generated;
  return out;
}

std::vector<json> parse_events(const std::vector<std::string>& events) {
  std::vector<json> out;
  for (const std::string& e : events) {
    EXPECT_EQ(e.rfind("data: ", 0), 0u);
    EXPECT_EQ(e.substr(e.size() - 2), "\n\n");
    out.push_back(json::parse(e.substr(6, e.size() - 8)));
  }
  return out;
}

void expect_usage(const json& usage, int prompt, int completion) {
  ASSERT_TRUE(usage.is_object()) << usage.dump();
  EXPECT_EQ(usage["prompt_tokens"], prompt);
  EXPECT_EQ(usage["completion_tokens"], completion);
  EXPECT_EQ(usage["total_tokens"], prompt + completion);
}

class ApiResponseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = make_test_model();
    ASSERT_NE(model_, nullptr);
  }
  PreparedRequest completion(const json& body) {
    return ok_request(prepare_completion(body.dump(), model_->served));
  }
  PreparedRequest chat(json body) {
    body["messages"] = json::array({{{"role", "user"}, {"content", "Hi"}}});
    return ok_request(prepare_chat_completion(body.dump(), model_->served));
  }
  std::unique_ptr<testing::TestModel> model_;
};

TEST_F(ApiResponseTest, CompletionBody) {
  const PreparedRequest p = completion({{"prompt", {"a", "b"}}, {"n", 2}});
  ResponseAssembler a(p, "cmpl-x", 123);
  using engine::FinishReason;
  EXPECT_TRUE(
      a.on_output(0, output({delta(0, "Hel", {1}), delta(1, "Yo", {2})}, false, 2)).empty());
  (void)a.on_output(0, output({delta(0, "lo", {3}, FinishReason::kStop),
                               delta(1, "!", {4}, FinishReason::kLength)},
                              true, 4));
  (void)a.on_output(
      1, output({delta(1, "x", {5}, FinishReason::kAbort), delta(0, "y", {6}, FinishReason::kStop)},
                true, 2));
  EXPECT_FALSE(a.error().has_value());
  const json body = json::parse(a.finish());
  EXPECT_EQ(body["id"], "cmpl-x");
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["created"], 123);
  EXPECT_EQ(body["model"], "smol");
  ASSERT_EQ(body["choices"].size(), 4u);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"Hello", "stop"}, {"Yo!", "length"}, {"y", "stop"}, {"x", "abort"}};
  for (size_t i = 0; i < 4; ++i) {
    const json& c = body["choices"][i];
    EXPECT_EQ(c["index"], i);
    EXPECT_EQ(c["text"], expected[i].first);
    EXPECT_EQ(c["finish_reason"], expected[i].second);
    EXPECT_TRUE(c["logprobs"].is_null());
  }
  expect_usage(body["usage"], 8, 6);
}

TEST_F(ApiResponseTest, CompletionEchoAndLegacyLogprobs) {
  const PreparedRequest echo = completion({{"prompt", "Say"}, {"echo", true}});
  ResponseAssembler a(echo, "cmpl-1", 1);
  (void)a.on_output(0, output({delta(0, " hi", {1}, engine::FinishReason::kStop)}, true, 1));
  EXPECT_EQ(json::parse(a.finish())["choices"][0]["text"], "Say hi");

  const PreparedRequest lp = completion({{"prompt", "Say"}, {"logprobs", 2}});
  ResponseAssembler b(lp, "cmpl-2", 1);
  engine::CompletionDelta d = delta(0, "ab", {64, 65}, engine::FinishReason::kStop);
  d.logprobs = {{{64, -0.5f}, {{64, -0.5f}, {70, -1.5f}}},
                {{65, -0.25f}, {{65, -0.25f}, {71, -3.0f}}}};
  (void)b.on_output(0, output({d}, true, 2));
  const json logprobs = json::parse(b.finish())["choices"][0]["logprobs"];
  ASSERT_TRUE(logprobs.is_object()) << logprobs.dump();
  const std::string t64 = model_->tokenizer->decode(std::vector<int32_t>{64}, false);
  const std::string t65 = model_->tokenizer->decode(std::vector<int32_t>{65}, false);
  EXPECT_EQ(logprobs["tokens"], json::array({t64, t65}));
  EXPECT_EQ(logprobs["token_logprobs"], json::array({-0.5, -0.25}));
  ASSERT_EQ(logprobs["top_logprobs"].size(), 2u);
  EXPECT_TRUE(logprobs["top_logprobs"][0].is_object());
  EXPECT_EQ(logprobs["top_logprobs"][0][t64], -0.5);
  EXPECT_EQ(logprobs["text_offset"], json::array({0, static_cast<int>(t64.size())}));
}

TEST_F(ApiResponseTest, CompletionStream) {
  const PreparedRequest p = completion({{"prompt", "Say"},
                                        {"echo", true},
                                        {"stream", true},
                                        {"stream_options", {{"include_usage", true}}}});
  ResponseAssembler a(p, "cmpl-s", 5);
  std::vector<std::string> events = a.on_output(0, output({delta(0, " h", {1})}, false, 1));
  auto more = a.on_output(0, output({delta(0, "i", {2}, engine::FinishReason::kLength)}, true, 2));
  events.insert(events.end(), more.begin(), more.end());
  const std::vector<json> chunks = parse_events(events);
  ASSERT_EQ(chunks.size(), 2u);
  std::string text;
  for (const json& c : chunks) {
    EXPECT_EQ(c["object"], "text_completion");
    EXPECT_EQ(c["id"], "cmpl-s");
    EXPECT_TRUE(c.contains("usage") && c["usage"].is_null());
    ASSERT_EQ(c["choices"].size(), 1u);
    text += c["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(text, "Say hi");
  EXPECT_TRUE(chunks[0]["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chunks[1]["choices"][0]["finish_reason"], "length");
  const std::string tail = a.finish();
  const std::string done = "data: [DONE]\n\n";
  ASSERT_GT(tail.size(), done.size());
  EXPECT_EQ(tail.substr(tail.size() - done.size()), done);
  const json usage_chunk = json::parse(tail.substr(6, tail.size() - done.size() - 8));
  EXPECT_EQ(usage_chunk["choices"], json::array());
  expect_usage(usage_chunk["usage"], 4, 2);
}

TEST_F(ApiResponseTest, ChatBodyAndStream) {
  const PreparedRequest p = chat({{"logprobs", true}, {"top_logprobs", 1}});
  ResponseAssembler a(p, "chatcmpl-1", 9);
  engine::CompletionDelta d = delta(0, "Hi!", {64}, engine::FinishReason::kStop);
  d.logprobs = {{{64, -0.1f}, {{64, -0.1f}}}};
  (void)a.on_output(0, output({d}, true, 1));
  const json body = json::parse(a.finish());
  EXPECT_EQ(body["object"], "chat.completion");
  const json& choice = body["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["message"]["role"], "assistant");
  EXPECT_EQ(choice["message"]["content"], "Hi!");
  EXPECT_FALSE(choice["message"].contains("tool_calls"));
  EXPECT_EQ(choice["finish_reason"], "stop");
  const json& entry = choice["logprobs"]["content"][0];
  EXPECT_TRUE(entry["token"].is_string());
  EXPECT_FLOAT_EQ(entry["logprob"].get<float>(), -0.1f);
  EXPECT_TRUE(entry["bytes"].is_array());
  EXPECT_EQ(entry["top_logprobs"].size(), 1u);
  expect_usage(body["usage"], 4, 1);
  EXPECT_EQ(body["usage"]["prompt_tokens_details"]["cached_tokens"], 2);

  PreparedRequest s = chat({{"stream", true}, {"n", 2}});
  ResponseAssembler b(s, "chatcmpl-2", 9);
  std::vector<std::string> events =
      b.on_output(0, output({delta(0, "A", {1}), delta(1, "B", {2})}, false, 2));
  auto more = b.on_output(0, output({delta(1, "", {3}, engine::FinishReason::kLength),
                                     delta(0, "C", {4}, engine::FinishReason::kStop)},
                                    true, 4));
  events.insert(events.end(), more.begin(), more.end());
  const std::vector<json> chunks = parse_events(events);
  std::map<int, std::string> content, finish;
  std::map<int, int> role_first;
  for (const json& c : chunks) {
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_FALSE(c.contains("usage"));  // only with include_usage
    const json& ch = c["choices"][0];
    const int i = ch["index"];
    if (!role_first.count(i)) {
      role_first[i] = 1;
      EXPECT_EQ(ch["delta"]["role"], "assistant") << "first chunk of choice " << i;
    }
    EXPECT_TRUE(finish[i].empty()) << "chunk after finish";
    if (ch["delta"].contains("content")) content[i] += ch["delta"]["content"].get<std::string>();
    if (!ch["finish_reason"].is_null()) finish[i] = ch["finish_reason"];
  }
  EXPECT_EQ(content[0], "AC");
  EXPECT_EQ(content[1], "B");
  EXPECT_EQ(finish[0], "stop");
  EXPECT_EQ(finish[1], "length");
  EXPECT_EQ(b.finish(), "data: [DONE]\n\n");
}

TEST_F(ApiResponseTest, EngineErrorIsReported) {
  const PreparedRequest p = chat(json::object());
  ResponseAssembler a(p, "chatcmpl-e", 1);
  engine::RequestOutput out = output({delta(0, "", {}, engine::FinishReason::kError)}, true, 0);
  out.error = make_error(StatusCode::kInternal, "step failed");
  (void)a.on_output(0, out);
  ASSERT_TRUE(a.error().has_value());
  EXPECT_EQ(a.error()->http_status, 500);
  EXPECT_EQ(a.error()->message, "step failed");
}

TEST_F(ApiResponseTest, ModelsTokenizeDetokenize) {
  const json models = json::parse(models_response(model_->served));
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "smol");
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(models["data"][0]["created"], 1700000000);
  EXPECT_EQ(models["data"][0]["owned_by"], "tessera");
  EXPECT_EQ(models["data"][0]["max_model_len"], 2048);

  auto tok = tokenize(R"({"prompt": "Hello world", "add_special_tokens": false})", model_->served);
  ASSERT_TRUE(std::holds_alternative<std::string>(tok));
  const json t = json::parse(std::get<std::string>(tok));
  const auto ids = model_->tokenizer->encode("Hello world", false);
  EXPECT_EQ(t["tokens"].get<std::vector<int32_t>>(), ids);
  EXPECT_EQ(t["count"], ids.size());
  EXPECT_EQ(t["max_model_len"], 2048);

  auto chat_tok = tokenize(R"({"messages": [{"role": "user", "content": "Hi"}]})", model_->served);
  ASSERT_TRUE(std::holds_alternative<std::string>(chat_tok));
  const PreparedRequest p = chat(json::object());
  EXPECT_EQ(json::parse(std::get<std::string>(chat_tok))["tokens"].get<std::vector<int32_t>>(),
            p.requests[0].prompt_tokens);

  auto detok = detokenize(json({{"tokens", ids}}).dump(), model_->served);
  ASSERT_TRUE(std::holds_alternative<std::string>(detok));
  EXPECT_EQ(json::parse(std::get<std::string>(detok))["prompt"], "Hello world");

  for (const char* bad : {"[]", "{}", R"({"prompt": 5})", R"({"prompt": "a", "messages": []})",
                          R"({"prompt": "a", "model": "nope"})"}) {
    EXPECT_TRUE(std::holds_alternative<ApiError>(tokenize(bad, model_->served))) << bad;
  }
  for (const char* bad : {"{}", R"({"tokens": "x"})", R"({"tokens": [-1]})",
                          R"({"tokens": [99999999]})", R"({"tokens": [1.5]})", "nope"}) {
    auto r = detokenize(bad, model_->served);
    ASSERT_TRUE(std::holds_alternative<ApiError>(r)) << bad;
    EXPECT_EQ(std::get<ApiError>(r).http_status, 400);
  }
}

// The chat prompt for the real SmolLM2 GGUF: its own template and tokenizer, the rendered text
// encoded without special tokens.
TEST(ApiSmolLM2Test, ChatPromptEqualsRenderedTemplate) {
  const std::string path = std::string(TESSERA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path << " (run scripts/setup.sh)";
  auto gguf = model::GgufFile::open(path);
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto tok = text::tokenizer_from_gguf(*gguf);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const auto source = gguf->get_string("tokenizer.chat_template");
  ASSERT_TRUE(source.has_value());
  auto tmpl = text::ChatTemplate::parse(*source, std::string(tok->token_text(*tok->bos_id())),
                                        std::string(tok->token_text(*tok->eos_id())));
  ASSERT_TRUE(tmpl.ok()) << tmpl.status().message();
  ServedModel served;
  served.name = "SmolLM2";
  served.tokenizer = &*tok;
  served.chat_template = &*tmpl;
  served.max_model_len = 8192;
  served.tool_call_format = detect_tool_call_format(*source);
  EXPECT_EQ(served.tool_call_format, ToolCallFormat::kHermes);
  const json messages = json::array({{{"role", "user"}, {"content", "What is 2+2?"}}});
  const PreparedRequest p = ok_request(
      prepare_chat_completion(json({{"model", "SmolLM2"}, {"messages", messages}}).dump(), served));
  const std::string expected =
      "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
      "Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(p.requests[0].prompt_tokens, tok->encode(expected, false));
  EXPECT_EQ(tok->decode(p.requests[0].prompt_tokens, false), expected);
}

}  // namespace
}  // namespace tessera::api

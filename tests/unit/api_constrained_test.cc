// Constrained decoding on the API side: tool_choice "required" / named and response_format json
// give the engine request a grammar; every output the tool grammar allows (random walks over
// single-byte tokens, per template family) parses back into exactly one call with an allowed
// name, JSON arguments and finish_reason "tool_calls".
#include <gtest/gtest.h>

#include <random>

#include "tessera/sampling/grammar.h"
#include "tests/unit/api_test_util.h"

namespace tessera::api {
namespace {

using testing::json;
using testing::make_test_model;
using testing::ok_request;

json tools_json() {
  json tools = json::array();
  for (const char* name : {"get_weather", "get_time", "search"}) {
    tools.push_back({{"type", "function"},
                     {"function", {{"name", name}, {"parameters", {{"type", "object"}}}}}});
  }
  return tools;
}

json chat_body(json tool_choice) {
  return {{"messages", json::array({{{"role", "user"}, {"content", "Weather in Paris?"}}})},
          {"tools", tools_json()},
          {"tool_choice", std::move(tool_choice)}};
}

json whole_choice(const PreparedRequest& p, const std::string& text) {
  ResponseAssembler assembler(p, "chatcmpl-1", 1);
  engine::RequestOutput out;
  engine::CompletionDelta delta;
  delta.text = text;
  delta.token_ids = {1};
  delta.finish_reason = engine::FinishReason::kStop;
  out.deltas.push_back(std::move(delta));
  out.finished = true;
  out.num_prompt_tokens = 10;
  out.num_generated_tokens = 3;
  EXPECT_TRUE(assembler.on_output(0, std::move(out)).empty());
  return json::parse(assembler.finish())["choices"][0];
}

// A random sentence of `g`: bytes drawn uniformly among those the state accepts, with a bias
// towards closing ('"', '}', ']') so that walks end; "" when it did not end in 4000 bytes.
std::string random_sentence(const std::shared_ptr<const sampling::Grammar>& g, std::mt19937& rng) {
  sampling::GrammarState s(g);
  std::string out;
  for (int i = 0; i < 4000; ++i) {
    if (s.is_complete() && !s.can_continue()) return out;
    std::vector<char> ok;
    for (int b = 1; b < 256; ++b) {
      sampling::GrammarState t = s;
      const char c = static_cast<char>(b);
      if (!t.advance(std::string_view(&c, 1))) continue;
      const int weight = (c == '"' || c == '}' || c == ']') ? 40 : 1;
      for (int w = 0; w < weight; ++w) ok.push_back(c);
    }
    if (ok.empty()) return s.is_complete() ? out : "";
    const char c = ok[rng() % ok.size()];
    EXPECT_TRUE(s.advance(std::string_view(&c, 1)));
    out.push_back(c);
  }
  return "";
}

TEST(ApiConstrainedTest, RequiredToolChoiceOutputsAlwaysParseToOneCall) {
  const std::vector<std::string> names = {"get_weather", "get_time", "search"};
  for (const char* family : {"qwen2.5", "smollm2", "llama3.1", "deepseek-v3", "mistral-v0.3"}) {
    auto model = make_test_model(family);
    ASSERT_NE(model, nullptr) << family;
    const PreparedRequest p =
        ok_request(prepare_chat_completion(chat_body("required").dump(), model->served));
    ASSERT_EQ(p.requests.size(), 1u);
    const auto& grammar = p.requests[0].grammar;
    ASSERT_NE(grammar, nullptr) << family;
    std::mt19937 rng(11);
    int parsed = 0;
    for (int walk = 0; walk < 30; ++walk) {
      const std::string text = random_sentence(grammar, rng);
      if (text.empty()) continue;
      const json choice = whole_choice(p, text);
      const json calls = choice["message"].value("tool_calls", json::array());
      ASSERT_EQ(calls.size(), 1u) << family << ": " << text << "\n" << choice.dump();
      const std::string name = calls[0]["function"]["name"];
      EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
      const json args = json::parse(calls[0]["function"]["arguments"].get<std::string>(), nullptr,
                                    /*allow_exceptions=*/false);
      EXPECT_TRUE(args.is_object()) << text;
      EXPECT_EQ(choice["finish_reason"], "tool_calls") << text;
      ++parsed;
    }
    EXPECT_GE(parsed, 20) << family;
    std::printf("[api constrained] %s: %d random calls parsed\n", family, parsed);
  }
}

TEST(ApiConstrainedTest, NamedToolChoiceAllowsOnlyThatName) {
  auto model = make_test_model("qwen2.5");
  ASSERT_NE(model, nullptr);
  const json named = {{"type", "function"}, {"function", {{"name", "get_time"}}}};
  const PreparedRequest p =
      ok_request(prepare_chat_completion(chat_body(named).dump(), model->served));
  ASSERT_NE(p.requests[0].grammar, nullptr);
  sampling::GrammarState ok(p.requests[0].grammar);
  EXPECT_TRUE(ok.advance("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}"
                         "\n</tool_call>"));
  EXPECT_TRUE(ok.is_complete());
  sampling::GrammarState other(p.requests[0].grammar);
  EXPECT_FALSE(other.advance("<tool_call>\n{\"name\": \"get_weather\""));
  // auto and none stay unconstrained.
  for (const char* choice : {"auto", "none"}) {
    EXPECT_EQ(ok_request(prepare_chat_completion(chat_body(choice).dump(), model->served))
                  .requests[0]
                  .grammar,
              nullptr)
        << choice;
  }
}

TEST(ApiConstrainedTest, TemplateWithoutToolSyntaxUsesHermes) {
  auto model = make_test_model("smollm2");
  ASSERT_NE(model, nullptr);
  model->served.tool_call_format = ToolCallFormat::kNone;
  const PreparedRequest p =
      ok_request(prepare_chat_completion(chat_body("required").dump(), model->served));
  ASSERT_NE(p.requests[0].grammar, nullptr);
  const std::string text =
      "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"x\"}}\n</tool_call>";
  sampling::GrammarState s(p.requests[0].grammar);
  EXPECT_TRUE(s.advance(text) && s.is_complete());
  const json choice = whole_choice(p, text);
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u) << choice.dump();
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
}

TEST(ApiConstrainedTest, ResponseFormatJsonGivesAnObjectGrammar) {
  auto model = make_test_model("smollm2");
  ASSERT_NE(model, nullptr);
  for (const json& format : {json{{"type", "json_object"}},
                             json{{"type", "json_schema"},
                                  {"json_schema", {{"name", "x"}, {"schema", json::object()}}}}}) {
    json body = {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})},
                 {"response_format", format}};
    const PreparedRequest chat = ok_request(prepare_chat_completion(body.dump(), model->served));
    ASSERT_NE(chat.requests[0].grammar, nullptr) << format.dump();
    sampling::GrammarState s(chat.requests[0].grammar);
    EXPECT_FALSE(s.advance("[1]"));
    EXPECT_TRUE(s.advance("{\"a\": [1]}") && s.is_complete());
    const json completion = {{"prompt", "hi"}, {"response_format", format}};
    EXPECT_NE(ok_request(prepare_completion(completion.dump(), model->served)).requests[0].grammar,
              nullptr);
  }
  json text = {{"prompt", "hi"}, {"response_format", {{"type", "text"}}}};
  EXPECT_EQ(ok_request(prepare_completion(text.dump(), model->served)).requests[0].grammar,
            nullptr);
}

}  // namespace
}  // namespace tessera::api

// Tool calls: the format detected from each real template, tool calls rendered by that template
// (which is the format its model writes) parsed back into the same calls, realistic model
// outputs per family, and streamed tool calls reassembling to the non-streamed message.
#include <gtest/gtest.h>

#include <random>

#include "src/api/tool_parser.h"
#include "tests/unit/api_test_util.h"

namespace tessera::api {
namespace {

using testing::json;
using testing::make_test_model;
using testing::ok_request;

TEST(ApiToolsTest, DetectsFormatFromRealTemplates) {
  EXPECT_EQ(detect_tool_call_format(testing::template_source("qwen2.5")), ToolCallFormat::kHermes);
  EXPECT_EQ(detect_tool_call_format(testing::template_source("smollm2")), ToolCallFormat::kHermes);
  EXPECT_EQ(detect_tool_call_format(testing::template_source("llama3.1")),
            ToolCallFormat::kLlama3Json);
  EXPECT_EQ(detect_tool_call_format(testing::template_source("deepseek-v3")),
            ToolCallFormat::kDeepSeekV3);
  EXPECT_EQ(detect_tool_call_format(testing::template_source("mistral-v0.3")),
            ToolCallFormat::kMistral);
  EXPECT_EQ(detect_tool_call_format("{{ messages }}"), ToolCallFormat::kNone);
}

engine::RequestOutput text_output(std::string text, bool finished,
                                  engine::FinishReason reason = engine::FinishReason::kStop) {
  engine::RequestOutput out;
  engine::CompletionDelta delta;
  delta.text = std::move(text);
  delta.token_ids = {1};
  if (finished) delta.finish_reason = reason;
  out.deltas.push_back(std::move(delta));
  out.finished = finished;
  out.num_prompt_tokens = 10;
  out.num_generated_tokens = 3;
  return out;
}

// The non-streamed message for `text`.
json whole_message(const PreparedRequest& p, const std::string& text) {
  ResponseAssembler assembler(p, "chatcmpl-1", 1);
  EXPECT_TRUE(assembler.on_output(0, text_output(text, true)).empty());
  const json body = json::parse(assembler.finish());
  return body["choices"][0];
}

// Streams `text` in pieces cut at the given byte positions (whole UTF-8 characters) and
// reassembles the deltas as the openai client does.
json streamed_message(PreparedRequest p, const std::string& text, std::vector<size_t> cuts) {
  p.stream = true;
  ResponseAssembler assembler(p, "chatcmpl-1", 1);
  std::vector<std::string> events;
  size_t begin = 0;
  cuts.push_back(text.size());
  for (size_t i = 0; i < cuts.size(); ++i) {
    const bool last = i + 1 == cuts.size();
    auto e = assembler.on_output(0, text_output(text.substr(begin, cuts[i] - begin), last));
    events.insert(events.end(), e.begin(), e.end());
    begin = cuts[i];
  }
  const std::string tail = assembler.finish();
  EXPECT_EQ(tail, "data: [DONE]\n\n");
  json message = {{"role", nullptr}, {"content", ""}, {"tool_calls", json::array()}};
  json finish_reason = nullptr;
  for (const std::string& event : events) {
    EXPECT_EQ(event.rfind("data: ", 0), 0u);
    EXPECT_EQ(event.substr(event.size() - 2), "\n\n");
    const json chunk = json::parse(event.substr(6));
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    const json& choice = chunk["choices"][0];
    EXPECT_TRUE(finish_reason.is_null()) << "a chunk after the finish_reason";
    const json& delta = choice["delta"];
    if (delta.contains("role")) message["role"] = delta["role"];
    if (delta.contains("content") && delta["content"].is_string()) {
      message["content"] =
          message["content"].get<std::string>() + delta["content"].get<std::string>();
    }
    if (delta.contains("tool_calls")) {
      for (const json& call : delta["tool_calls"]) {
        const size_t index = call["index"].get<size_t>();
        json& calls = message["tool_calls"];
        if (index == calls.size()) {
          EXPECT_TRUE(call.contains("id") && call.contains("type")) << "first delta of a call";
          calls.push_back({{"id", call["id"]},
                           {"type", call["type"]},
                           {"function", {{"name", call["function"]["name"]}, {"arguments", ""}}}});
        }
        if (index >= calls.size()) {
          ADD_FAILURE() << "tool call index " << index << " skips ahead";
          continue;
        }
        if (call["function"].contains("arguments")) {
          calls[index]["function"]["arguments"] =
              calls[index]["function"]["arguments"].get<std::string>() +
              call["function"]["arguments"].get<std::string>();
        }
      }
    }
    if (!choice["finish_reason"].is_null()) finish_reason = choice["finish_reason"];
  }
  return {{"message", message}, {"finish_reason", finish_reason}};
}

// The streamed and whole messages agree (ids aside); returns the whole one.
json check_stream_matches(const PreparedRequest& p, const std::string& text, uint32_t seed) {
  const json whole = whole_message(p, text);
  std::vector<size_t> boundaries;  // UTF-8 character starts
  for (size_t i = 1; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) boundaries.push_back(i);
  }
  std::mt19937 rng(seed);
  for (int trial = 0; trial < 6; ++trial) {
    std::vector<size_t> cuts;
    if (trial == 0) {
      cuts = boundaries;  // one character at a time
    } else {
      for (size_t b : boundaries) {
        if (rng() % (trial + 1) == 0) cuts.push_back(b);
      }
    }
    const json streamed = streamed_message(p, text, cuts);
    EXPECT_EQ(streamed["finish_reason"], whole["finish_reason"]) << text;
    EXPECT_EQ(streamed["message"]["role"], "assistant");
    const json& content = whole["message"]["content"];
    EXPECT_EQ(streamed["message"]["content"], content.is_null() ? json("") : content)
        << "trial " << trial << " text " << text;
    const json whole_calls = whole["message"].value("tool_calls", json::array());
    const json& calls = streamed["message"]["tool_calls"];
    EXPECT_EQ(calls.size(), whole_calls.size()) << text;
    for (size_t i = 0; i < std::min(calls.size(), whole_calls.size()); ++i) {
      EXPECT_EQ(calls[i]["function"], whole_calls[i]["function"]) << text;
      EXPECT_EQ(calls[i]["type"], "function");
    }
  }
  return whole;
}

PreparedRequest tools_request(const ServedModel& served) {
  json body = {{"messages", json::array({{{"role", "user"}, {"content", "Weather in Paris?"}}})},
               {"tools", json::array({{{"type", "function"},
                                       {"function",
                                        {{"name", "get_weather"},
                                         {"description", "Current weather"},
                                         {"parameters",
                                          {{"type", "object"},
                                           {"properties", {{"city", {{"type", "string"}}}}},
                                           {"required", {"city"}}}}}}}})}};
  return ok_request(prepare_chat_completion(body.dump(), served));
}

struct FamilyCase {
  const char* template_name;
  std::string assistant_open;   // where the assistant's output starts in the rendering
  std::string assistant_close;  // and where it ends
  bool single_call_only;
};

// A conversation whose assistant turn holds tool calls, rendered by the real template through
// prepare_chat_completion, is cut back to the assistant's text and parsed: the calls return.
TEST(ApiToolsTest, TemplateRenderedCallsParseBack) {
  const std::vector<FamilyCase> cases = {
      {"qwen2.5", "<|im_start|>assistant", "<|im_end|>", false},
      {"llama3.1", "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>", true},
      {"deepseek-v3", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", false},
      {"mistral-v0.3", "[/INST]", "<|im_end|>", false},
  };
  for (const FamilyCase& c : cases) {
    SCOPED_TRACE(c.template_name);
    auto model = make_test_model(c.template_name);
    ASSERT_NE(model, nullptr);
    json calls = json::array();
    calls.push_back(
        {{"id", "abcdefghi"},
         {"type", "function"},
         {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Paris\"}"}}}});
    if (!c.single_call_only) {
      calls.push_back({{"id", "bcdefghij"},
                       {"type", "function"},
                       {"function",
                        {{"name", "get_time"},
                         {"arguments", "{\"zone\": \"CET\", \"fmt\": [1, {\"a\": \"}\"}]}"}}}});
    }
    json body = {
        {"messages",
         json::array({{{"role", "user"}, {"content", "Weather in Paris?"}},
                      {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", calls}}})},
        {"add_generation_prompt", false}};
    const PreparedRequest rendered_request =
        ok_request(prepare_chat_completion(body.dump(), model->served));
    const std::string rendered =
        model->tokenizer->decode(rendered_request.requests[0].prompt_tokens, false);
    const size_t open = rendered.rfind(c.assistant_open);
    ASSERT_NE(open, std::string::npos) << rendered;
    const size_t begin = open + c.assistant_open.size();
    const size_t close = rendered.find(c.assistant_close, begin);
    ASSERT_NE(close, std::string::npos) << rendered;
    const std::string assistant_text = rendered.substr(begin, close - begin);

    const PreparedRequest p = tools_request(model->served);
    const json whole = check_stream_matches(p, assistant_text, 7);
    EXPECT_EQ(whole["finish_reason"], "tool_calls") << assistant_text;
    EXPECT_TRUE(whole["message"]["content"].is_null()) << whole.dump();
    const json& parsed = whole["message"]["tool_calls"];
    ASSERT_EQ(parsed.size(), calls.size()) << assistant_text;
    for (size_t i = 0; i < calls.size(); ++i) {
      EXPECT_EQ(parsed[i]["type"], "function");
      EXPECT_EQ(parsed[i]["function"]["name"], calls[i]["function"]["name"]);
      EXPECT_EQ(json::parse(parsed[i]["function"]["arguments"].get<std::string>()),
                json::parse(calls[i]["function"]["arguments"].get<std::string>()));
      const std::string id = parsed[i]["id"];
      if (std::string(c.template_name) == "mistral-v0.3") {
        EXPECT_EQ(id.size(), 9u);  // Mistral's template insists on 9 alphanumerics
      } else {
        EXPECT_EQ(id.rfind("call_", 0), 0u) << id;
      }
    }
  }
}

struct OutputCase {
  const char* template_name;
  std::string text;
  std::vector<std::string> names;  // expected calls
  json content;                    // expected non-streamed content
};

TEST(ApiToolsTest, RealisticOutputsPerFamily) {
  const std::vector<OutputCase> cases = {
      {"qwen2.5",
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
       "</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
       {"get_weather", "get_time"},
       nullptr},
      {"qwen2.5",
       "Let me check that for you.\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
       "{\"city\": \"Paris\"}}\n</tool_call>",
       {"get_weather"},
       "Let me check that for you."},
      {"qwen2.5",
       "It is sunny in Paris. <tool_cal is not a tag",
       {},
       "It is sunny in Paris. <tool_cal is not a tag"},
      {"qwen2.5",
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": ",
       {},
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "},
      {"qwen2.5",
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}",
       {"get_weather"},
       nullptr},  // eos before the closing tag
      {"qwen2.5",
       "<tool_call>not json</tool_call> sorry",
       {},
       "<tool_call>not json</tool_call> sorry"},
      {"smollm2",
       "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}</tool_call>",
       {"get_weather"},
       nullptr},
      {"llama3.1",
       "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
       {"get_weather"},
       nullptr},
      {"llama3.1",
       "<|python_tag|>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}",
       {"get_weather"},
       nullptr},
      {"llama3.1",
       "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; "
       "{\"name\": \"get_time\", \"parameters\": {\"zone\": \"CET\"}}",
       {"get_weather", "get_time"},
       nullptr},
      {"llama3.1", "The answer is {\"name\": \"x\"}", {}, "The answer is {\"name\": \"x\"}"},
      {"llama3.1", "{\"temperature\": 21}", {}, "{\"temperature\": 21}"},
      {"deepseek-v3",
       "I'll look it "
       "up.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
       "```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function"
       "<｜tool▁sep｜>get_time\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
       {"get_weather", "get_time"},
       "I'll look it up."},
      {"mistral-v0.3",
       "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, "
       "{\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\"}}]",
       {"get_weather", "get_time"},
       nullptr},
      {"mistral-v0.3",
       "Plain answer with [brackets] and {braces}.",
       {},
       "Plain answer with [brackets] and {braces}."},
  };
  for (const OutputCase& c : cases) {
    SCOPED_TRACE(std::string(c.template_name) + ": " + c.text);
    auto model = make_test_model(c.template_name);
    ASSERT_NE(model, nullptr);
    const PreparedRequest p = tools_request(model->served);
    const json whole = check_stream_matches(p, c.text, 11);
    const json calls = whole["message"].value("tool_calls", json::array());
    ASSERT_EQ(calls.size(), c.names.size()) << whole.dump();
    for (size_t i = 0; i < c.names.size(); ++i) {
      EXPECT_EQ(calls[i]["function"]["name"], c.names[i]);
      EXPECT_FALSE(json::parse(calls[i]["function"]["arguments"].get<std::string>(), nullptr, false)
                       .is_discarded());
    }
    EXPECT_EQ(whole["message"]["content"], c.content) << whole.dump();
    EXPECT_EQ(whole["finish_reason"], c.names.empty() ? "stop" : "tool_calls");
  }
}

TEST(ApiToolsTest, ToolChoiceNoneLeavesTextAlone) {
  auto model = make_test_model("qwen2.5");
  ASSERT_NE(model, nullptr);
  json body = {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})},
               {"tools", json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}})},
               {"tool_choice", "none"}};
  const PreparedRequest none = ok_request(prepare_chat_completion(body.dump(), model->served));
  const std::string text = "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>";
  const json whole = whole_message(none, text);
  EXPECT_EQ(whole["message"]["content"], text);
  EXPECT_FALSE(whole["message"].contains("tool_calls"));
  // The template did not see the tools either.
  body.erase("tool_choice");
  const PreparedRequest with_tools =
      ok_request(prepare_chat_completion(body.dump(), model->served));
  EXPECT_GT(with_tools.requests[0].prompt_tokens.size(), none.requests[0].prompt_tokens.size());
  const std::string prompt = model->tokenizer->decode(with_tools.requests[0].prompt_tokens, false);
  EXPECT_NE(prompt.find("\"name\": \"f\""), std::string::npos) << prompt;
}

TEST(ApiToolsTest, ParserHoldsOnlyPossibleMarkers) {
  ToolCallParser parser(ToolCallFormat::kHermes);
  auto events = parser.feed("Hello <tool");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].content, "Hello");
  events = parser.feed("box> done");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].content, " <toolbox> done");
  EXPECT_TRUE(parser.finish().empty());
  EXPECT_EQ(json_value_end("{\"a\": \"}\\\"\", \"b\": [1, {}]} tail", 0), 26u);
  EXPECT_EQ(json_value_end("{\"a\": [", 0), std::string_view::npos);
}

}  // namespace
}  // namespace tessera::api

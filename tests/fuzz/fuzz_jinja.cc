// Fuzz target: ChatTemplate::parse + render on arbitrary template bytes with a fixed small
// conversation. Must never crash, hang or throw: the sandbox caps (kept small here so each input
// runs in milliseconds) bound loops, output, recursion and total evaluation steps.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tessera/text/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tessera::text::ChatTemplate;
  using tessera::text::ChatTemplateLimits;
  static const nlohmann::ordered_json kMessages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What's the weather in Zürich?"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "call12345", "type": "function",
      "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}}]},
    {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21}"},
    {"role": "assistant", "content": "<think>ok</think>21 degrees."}
  ])");
  static const nlohmann::ordered_json kTools = nlohmann::ordered_json::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "description": "Weather.",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                     "required": ["city"]}}}
  ])");
  static const nlohmann::ordered_json kExtra =
      nlohmann::ordered_json::parse(R"({"date_string": "01 Jan 2025", "enable_thinking": false})");
  ChatTemplateLimits limits;
  limits.max_output_bytes = 1 << 16;
  limits.max_loop_iterations = 1 << 12;
  limits.max_steps = 200000;
  limits.max_depth = 32;
  std::string_view source(reinterpret_cast<const char*>(data), size);
  auto tpl = ChatTemplate::parse(source, "<s>", "</s>", limits);
  if (!tpl.ok()) return 0;
  for (bool add_generation_prompt : {false, true}) {
    auto out = tpl->render(kMessages, add_generation_prompt ? kTools : nlohmann::ordered_json(),
                           add_generation_prompt, kExtra);
    volatile size_t sink = out.ok() ? out->size() : out.status().message().size();
    (void)sink;
  }
  return 0;
}

// Incremental tool-call parser for chat outputs: text goes in as the model writes it; content
// that is surely not part of a tool call comes out at once, and each tool call comes out whole
// once its closing marker (or JSON brace) has arrived.
// Invariant: the non-streamed response is this same parser fed the whole text at once, so the
// streamed events always reassemble to the non-streamed message.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tessera/api/openai.h"

namespace tessera::api {

struct ParsedToolCall {
  std::string name;
  std::string arguments;  // compact JSON text of the arguments object
};

// What one feed() or finish() releases, in output order.
struct ToolParserEvent {
  enum class Kind { kContent, kToolCall } kind = Kind::kContent;
  std::string content;  // kContent
  ParsedToolCall call;  // kToolCall
};

class ToolCallParser {
 public:
  explicit ToolCallParser(ToolCallFormat format) : format_(format) {}

  std::vector<ToolParserEvent> feed(std::string_view text);
  // End of output: whatever is held back is released (an unfinished call as content, unless it
  // parses without its closing marker).
  std::vector<ToolParserEvent> finish();

  int num_calls() const { return num_calls_; }

 private:
  enum class Mode { kContent, kCalls };
  enum class Step { kProgress, kWait, kExit };

  void run(bool final, std::vector<ToolParserEvent>* out);
  // Content mode: release text up to a possible start marker; true when tool mode began.
  bool scan_content(bool final, std::vector<ToolParserEvent>* out);
  // Tool mode: one call or separator at cursor_.
  Step step_calls(bool final, std::vector<ToolParserEvent>* out);
  Step step_hermes(bool final, std::vector<ToolParserEvent>* out);
  Step step_llama(bool final, std::vector<ToolParserEvent>* out);
  Step step_mistral(bool final, std::vector<ToolParserEvent>* out);
  Step step_deepseek(bool final, std::vector<ToolParserEvent>* out);
  void emit_content(size_t end, std::vector<ToolParserEvent>* out);
  void emit_call(ParsedToolCall call, std::vector<ToolParserEvent>* out);

  ToolCallFormat format_;
  Mode mode_ = Mode::kContent;
  std::string buffer_;      // all text so far
  size_t cursor_ = 0;       // buffer_[0, cursor_) has been released or consumed
  bool seen_text_ = false;  // content other than whitespace was released (Llama: no calls after)
  // Mistral: 0 before [TOOL_CALLS], 1 after it, 2 inside its [...] list.
  // DeepSeek: 0 before calls-begin, 1 after it.
  int block_state_ = 0;
  int num_calls_ = 0;
};

// A JSON object's tool call ({"name", "arguments" | "parameters"}) or false.
bool tool_call_from_json(std::string_view json_text, ParsedToolCall* call);

// Index one past the JSON object or array that starts at text[pos], or npos while incomplete.
size_t json_value_end(std::string_view text, size_t pos);

}  // namespace tessera::api

// Tool-call parsing for the Hermes/Qwen/SmolLM2, Llama-3.x JSON, DeepSeek-V3 and Mistral output
// formats (see tool_parser.h), and the format detection from a chat template's source.
// Invariant: every input byte leaves exactly once, as content or inside a parsed call; held-back
// text is only ever a possible marker or an unfinished call.
#include "src/api/tool_parser.h"

#include "src/api/api_internal.h"

namespace tessera::api {

namespace {

constexpr std::string_view kHermesBegin = "<tool_call>";
constexpr std::string_view kHermesEnd = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr std::string_view kMistralBegin = "[TOOL_CALLS]";
constexpr std::string_view kDsCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kDsCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kDsCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kDsCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kDsSep = "<｜tool▁sep｜>";

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

bool starts_with(std::string_view text, size_t pos, std::string_view prefix) {
  return text.substr(pos, prefix.size()) == prefix;
}

// text[pos..] is a non-empty proper prefix of `marker` (more text may complete it).
bool partial_marker(std::string_view text, size_t pos, std::string_view marker) {
  const std::string_view rest = text.substr(pos);
  return !rest.empty() && rest.size() < marker.size() && marker.substr(0, rest.size()) == rest;
}

// Length of the longest suffix of text[from..] that is a proper prefix of `marker`.
size_t held_prefix(std::string_view text, size_t from, std::string_view marker) {
  const size_t available = text.size() - from;
  for (size_t k = std::min(available, marker.size() - 1); k > 0; --k) {
    if (text.substr(text.size() - k) == marker.substr(0, k)) return k;
  }
  return 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view start_marker(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::kHermes:
      return kHermesBegin;
    case ToolCallFormat::kMistral:
      return kMistralBegin;
    case ToolCallFormat::kDeepSeekV3:
      return kDsCallsBegin;
    case ToolCallFormat::kLlama3Json:
    case ToolCallFormat::kNone:
      return {};
  }
  return {};
}

// DeepSeek's inside of one call: TYPE<｜tool▁sep｜>NAME\n```json\nARGS\n```
bool deepseek_call(std::string_view inner, ParsedToolCall* call) {
  const size_t sep = inner.find(kDsSep);
  if (sep == std::string_view::npos) return false;
  std::string_view rest = inner.substr(sep + kDsSep.size());
  const size_t newline = rest.find('\n');
  if (newline == std::string_view::npos) return false;
  const std::string_view name = trim(rest.substr(0, newline));
  std::string_view args = trim(rest.substr(newline + 1));
  if (args.substr(0, 3) == "```") {
    args.remove_prefix(3);
    if (args.substr(0, 4) == "json") args.remove_prefix(4);
  }
  args = trim(args);
  if (args.size() >= 3 && args.substr(args.size() - 3) == "```") args.remove_suffix(3);
  args = trim(args);
  if (name.empty()) return false;
  ojson parsed;
  if (parse_body(args, &parsed)) return false;
  call->name = std::string(name);
  call->arguments = dump_json(parsed);
  return true;
}

}  // namespace

ToolCallFormat detect_tool_call_format(std::string_view source) {
  auto has = [&](std::string_view s) { return source.find(s) != std::string_view::npos; };
  if (has(kDsCallsBegin) || has("tool▁call")) return ToolCallFormat::kDeepSeekV3;
  if (has(kMistralBegin)) return ToolCallFormat::kMistral;
  if (has(kHermesBegin)) return ToolCallFormat::kHermes;
  if (has("<|start_header_id|>") || has(kPythonTag)) return ToolCallFormat::kLlama3Json;
  if (has("<|im_start|>")) return ToolCallFormat::kHermes;  // ChatML (SmolLM2)
  return ToolCallFormat::kNone;
}

size_t json_value_end(std::string_view text, size_t pos) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = pos; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string_view::npos;
}

bool tool_call_from_json(std::string_view json_text, ParsedToolCall* call) {
  ojson parsed;
  if (parse_body(trim(json_text), &parsed)) return false;
  auto name = parsed.find("name");
  if (name == parsed.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return false;
  }
  auto args = parsed.find("arguments");
  if (args == parsed.end()) args = parsed.find("parameters");
  if (args == parsed.end() || args->is_null()) {
    call->arguments = "{}";
  } else if (args->is_object()) {
    call->arguments = dump_json(*args);
  } else if (args->is_string()) {
    call->arguments = args->get<std::string>();
  } else {
    return false;
  }
  call->name = name->get<std::string>();
  return true;
}

void ToolCallParser::emit_content(size_t end, std::vector<ToolParserEvent>* out) {
  if (end <= cursor_) return;
  std::string_view text = std::string_view(buffer_).substr(cursor_, end - cursor_);
  cursor_ = end;
  if (!trim(text).empty()) seen_text_ = true;
  if (!out->empty() && out->back().kind == ToolParserEvent::Kind::kContent) {
    out->back().content.append(text);
    return;
  }
  ToolParserEvent event;
  event.content = std::string(text);
  out->push_back(std::move(event));
}

void ToolCallParser::emit_call(ParsedToolCall call, std::vector<ToolParserEvent>* out) {
  ToolParserEvent event;
  event.kind = ToolParserEvent::Kind::kToolCall;
  event.call = std::move(call);
  out->push_back(std::move(event));
  ++num_calls_;
}

std::vector<ToolParserEvent> ToolCallParser::feed(std::string_view text) {
  buffer_.append(text);
  std::vector<ToolParserEvent> out;
  run(/*final=*/false, &out);
  return out;
}

std::vector<ToolParserEvent> ToolCallParser::finish() {
  std::vector<ToolParserEvent> out;
  run(/*final=*/true, &out);
  emit_content(buffer_.size(), &out);
  return out;
}

void ToolCallParser::run(bool final, std::vector<ToolParserEvent>* out) {
  // NOTE: each pass consumes text or switches mode after consuming; the bound only guarantees
  // termination should a format step ever fail to make progress.
  for (size_t guard = buffer_.size() + 16; guard > 0; --guard) {
    if (mode_ == Mode::kContent) {
      if (!scan_content(final, out)) return;
      mode_ = Mode::kCalls;
      continue;
    }
    const Step step = step_calls(final, out);
    if (step == Step::kWait) return;
    if (step == Step::kExit) {
      mode_ = Mode::kContent;
      block_state_ = 0;
    }
  }
}

bool ToolCallParser::scan_content(bool final, std::vector<ToolParserEvent>* out) {
  const std::string_view text(buffer_);
  if (format_ == ToolCallFormat::kNone) {
    emit_content(text.size(), out);
    return false;
  }
  if (format_ == ToolCallFormat::kLlama3Json) {
    // Calls only at the very start of the output (after whitespace), as the template asks.
    if (seen_text_) {
      emit_content(text.size(), out);
      return false;
    }
    size_t p = cursor_;
    while (p < text.size() && is_space(text[p])) ++p;
    if (p == text.size()) {
      if (final) emit_content(text.size(), out);
      return false;
    }
    if (starts_with(text, p, kPythonTag) || text[p] == '{') {
      cursor_ = p;
      return true;
    }
    if (!final && partial_marker(text, p, kPythonTag)) return false;
    emit_content(text.size(), out);
    return false;
  }
  // Whitespace right before a call belongs to no one, so trailing whitespace is held until
  // more text (or the end) shows what follows it.
  const auto without_trailing_space = [&](size_t end) {
    while (end > cursor_ && is_space(text[end - 1])) --end;
    return end;
  };
  const std::string_view marker = start_marker(format_);
  const size_t found = text.find(marker, cursor_);
  if (found != std::string_view::npos) {
    emit_content(without_trailing_space(found), out);
    cursor_ = found;
    return true;
  }
  if (final) {
    emit_content(text.size(), out);
  } else {
    emit_content(without_trailing_space(text.size() - held_prefix(text, cursor_, marker)), out);
  }
  return false;
}

ToolCallParser::Step ToolCallParser::step_calls(bool final, std::vector<ToolParserEvent>* out) {
  // Whitespace between calls belongs to no one.
  size_t p = cursor_;
  while (p < buffer_.size() && is_space(buffer_[p])) ++p;
  if (p == buffer_.size()) {
    if (!final) return Step::kWait;
    cursor_ = p;
    return Step::kExit;
  }
  cursor_ = p;
  switch (format_) {
    case ToolCallFormat::kHermes:
      return step_hermes(final, out);
    case ToolCallFormat::kLlama3Json:
      return step_llama(final, out);
    case ToolCallFormat::kMistral:
      return step_mistral(final, out);
    case ToolCallFormat::kDeepSeekV3:
      return step_deepseek(final, out);
    case ToolCallFormat::kNone:
      return Step::kExit;
  }
  return Step::kExit;
}

ToolCallParser::Step ToolCallParser::step_hermes(bool final, std::vector<ToolParserEvent>* out) {
  const std::string_view text(buffer_);
  const size_t p = cursor_;
  if (!starts_with(text, p, kHermesBegin)) {
    return !final && partial_marker(text, p, kHermesBegin) ? Step::kWait : Step::kExit;
  }
  const size_t body = p + kHermesBegin.size();
  const size_t close = text.find(kHermesEnd, body);
  if (close == std::string_view::npos && !final) return Step::kWait;
  const size_t body_end = close == std::string_view::npos ? text.size() : close;
  const size_t block_end =
      close == std::string_view::npos ? text.size() : close + kHermesEnd.size();
  ParsedToolCall call;
  if (!tool_call_from_json(text.substr(body, body_end - body), &call)) {
    emit_content(block_end, out);
    return Step::kExit;
  }
  cursor_ = block_end;
  emit_call(std::move(call), out);
  return Step::kProgress;
}

// One JSON object at cursor_ as a call; unparsable or not a call -> content.
ToolCallParser::Step ToolCallParser::step_llama(bool final, std::vector<ToolParserEvent>* out) {
  const std::string_view text(buffer_);
  const size_t p = cursor_;
  if (text[p] == ';') {
    cursor_ = p + 1;
    return Step::kProgress;
  }
  if (starts_with(text, p, kPythonTag)) {
    cursor_ = p + kPythonTag.size();
    return Step::kProgress;
  }
  if (!final && partial_marker(text, p, kPythonTag)) return Step::kWait;
  if (text[p] != '{') return Step::kExit;
  const size_t end = json_value_end(text, p);
  if (end == std::string_view::npos) {
    if (!final) return Step::kWait;
    emit_content(text.size(), out);
    return Step::kExit;
  }
  ParsedToolCall call;
  if (!tool_call_from_json(text.substr(p, end - p), &call)) {
    emit_content(end, out);
    return Step::kExit;
  }
  cursor_ = end;
  emit_call(std::move(call), out);
  return Step::kProgress;
}

ToolCallParser::Step ToolCallParser::step_mistral(bool final, std::vector<ToolParserEvent>* out) {
  const std::string_view text(buffer_);
  const size_t p = cursor_;
  if (block_state_ == 0) {
    if (starts_with(text, p, kMistralBegin)) {
      cursor_ = p + kMistralBegin.size();
      block_state_ = 1;
      return Step::kProgress;
    }
    return !final && partial_marker(text, p, kMistralBegin) ? Step::kWait : Step::kExit;
  }
  if (block_state_ == 1 && text[p] == '[') {
    cursor_ = p + 1;
    block_state_ = 2;
    return Step::kProgress;
  }
  if (block_state_ == 2 && text[p] == ',') {
    cursor_ = p + 1;
    return Step::kProgress;
  }
  if (block_state_ == 2 && text[p] == ']') {
    cursor_ = p + 1;
    block_state_ = 0;
    return Step::kProgress;
  }
  if (text[p] != '{') return Step::kExit;
  const size_t end = json_value_end(text, p);
  if (end == std::string_view::npos) {
    if (!final) return Step::kWait;
    emit_content(text.size(), out);
    return Step::kExit;
  }
  ParsedToolCall call;
  if (!tool_call_from_json(text.substr(p, end - p), &call)) {
    emit_content(end, out);
    return Step::kExit;
  }
  cursor_ = end;
  if (block_state_ == 1) block_state_ = 0;  // a bare object after the marker
  emit_call(std::move(call), out);
  return Step::kProgress;
}

ToolCallParser::Step ToolCallParser::step_deepseek(bool final, std::vector<ToolParserEvent>* out) {
  const std::string_view text(buffer_);
  const size_t p = cursor_;
  if (block_state_ == 0) {
    if (starts_with(text, p, kDsCallsBegin)) {
      cursor_ = p + kDsCallsBegin.size();
      block_state_ = 1;
      return Step::kProgress;
    }
    return !final && partial_marker(text, p, kDsCallsBegin) ? Step::kWait : Step::kExit;
  }
  if (starts_with(text, p, kDsCallsEnd)) {
    cursor_ = p + kDsCallsEnd.size();
    block_state_ = 0;
    return Step::kProgress;
  }
  if (!starts_with(text, p, kDsCallBegin)) {
    if (!final && (partial_marker(text, p, kDsCallBegin) || partial_marker(text, p, kDsCallsEnd))) {
      return Step::kWait;
    }
    return Step::kExit;
  }
  const size_t inner = p + kDsCallBegin.size();
  const size_t close = text.find(kDsCallEnd, inner);
  if (close == std::string_view::npos && !final) return Step::kWait;
  const size_t inner_end = close == std::string_view::npos ? text.size() : close;
  const size_t block_end =
      close == std::string_view::npos ? text.size() : close + kDsCallEnd.size();
  ParsedToolCall call;
  if (!deepseek_call(text.substr(inner, inner_end - inner), &call)) {
    emit_content(block_end, out);
    return Step::kExit;
  }
  cursor_ = block_end;
  emit_call(std::move(call), out);
  return Step::kProgress;
}

}  // namespace tessera::api

// ResponseAssembler: engine outputs -> OpenAI response bodies (non-streaming) or SSE chunks
// (streaming) for /v1/completions and /v1/chat/completions, with logprobs, echo, tool calls and
// usage in the shapes the official client reads.
// Invariant: text leaves only as the engine gave it (whole UTF-8 characters) or through the
// tool parser; a streamed response concatenates to the non-streamed one.
#include <cmath>
#include <map>

#include "src/api/api_internal.h"
#include "src/api/tool_parser.h"
#include "tessera/text/tokenizer.h"

namespace tessera::api {

namespace {

struct ToolCallOut {
  std::string id;
  ParsedToolCall call;
};

struct Choice {
  bool started = false;  // stream: role chunk / echo sent
  bool finished = false;
  std::optional<engine::FinishReason> reason;
  std::unique_ptr<ToolCallParser> parser;  // chat with tools only
  std::string text;                        // completions text, chat content (non-streaming)
  std::vector<ToolCallOut> calls;
  int num_calls_streamed = 0;
  ojson logprobs;           // chat: array of entries; legacy: the four arrays
  ojson pending_logprobs;   // stream: entries not yet attached to a chunk
  int64_t text_offset = 0;  // legacy: code points before the next token
};

int64_t count_code_points(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

double clamp_logprob(float v) { return std::isfinite(v) ? v : -9999.0; }

}  // namespace

struct ResponseAssembler::State {
  std::shared_ptr<const ResponseShape> shape;
  std::string id;
  int64_t created = 0;
  bool stream = false;
  bool include_usage = false;
  std::vector<Choice> choices;            // [num_prompts * n]
  std::vector<int64_t> prompt_tokens;     // [num_prompts]
  std::vector<int64_t> cached_tokens;     // [num_prompts]
  std::vector<int64_t> generated_tokens;  // [num_prompts]
  std::optional<ApiError> error;

  bool chat() const { return shape->endpoint == Endpoint::kChatCompletions; }

  std::string token_string(int32_t token) const {
    const int32_t ids[1] = {token};
    return shape->tokenizer ? shape->tokenizer->decode(ids, /*skip_special_tokens=*/false)
                            : std::to_string(token);
  }
  ojson token_bytes(int32_t token) const {
    ojson bytes = ojson::array();
    if (!shape->tokenizer) return bytes;
    for (unsigned char c : shape->tokenizer->token_to_piece(token)) bytes.push_back(int{c});
    return bytes;
  }

  // Appends this delta's logprobs to `choice` (whole response) and `pending` (stream).
  void add_logprobs(Choice& choice, const engine::CompletionDelta& delta) {
    if (shape->logprobs == LogprobsForm::kNone) return;
    for (const engine::SampledLogprobs& lp : delta.logprobs) {
      if (shape->logprobs == LogprobsForm::kChat) {
        ojson entry = ojson::object();
        entry["token"] = token_string(lp.sampled.token);
        entry["logprob"] = clamp_logprob(lp.sampled.logprob);
        entry["bytes"] = token_bytes(lp.sampled.token);
        ojson top = ojson::array();
        for (const engine::TokenLogprob& t : lp.top) {
          top.push_back({{"token", token_string(t.token)},
                         {"logprob", clamp_logprob(t.logprob)},
                         {"bytes", token_bytes(t.token)}});
        }
        entry["top_logprobs"] = std::move(top);
        if (!choice.pending_logprobs.is_array()) choice.pending_logprobs = ojson::array();
        choice.pending_logprobs.push_back(entry);
        if (!choice.logprobs.is_array()) choice.logprobs = ojson::array();
        choice.logprobs.push_back(std::move(entry));
        continue;
      }
      const std::string token = token_string(lp.sampled.token);
      ojson top = ojson::object();
      top[token] = clamp_logprob(lp.sampled.logprob);
      for (const engine::TokenLogprob& t : lp.top) {
        top[token_string(t.token)] = clamp_logprob(t.logprob);
      }
      for (ojson* target : {&choice.logprobs, &choice.pending_logprobs}) {
        if (!target->is_object()) {
          *target = {{"tokens", ojson::array()},
                     {"token_logprobs", ojson::array()},
                     {"top_logprobs", ojson::array()},
                     {"text_offset", ojson::array()}};
        }
        (*target)["tokens"].push_back(token);
        (*target)["token_logprobs"].push_back(clamp_logprob(lp.sampled.logprob));
        (*target)["top_logprobs"].push_back(top);
        (*target)["text_offset"].push_back(choice.text_offset);
      }
      choice.text_offset += count_code_points(token);
    }
  }

  ojson take_pending(Choice& choice) {
    if (shape->logprobs == LogprobsForm::kNone || choice.pending_logprobs.is_null()) {
      return nullptr;
    }
    ojson out = std::move(choice.pending_logprobs);
    choice.pending_logprobs = nullptr;
    if (shape->logprobs == LogprobsForm::kChat) return {{"content", std::move(out)}};
    return out;
  }

  std::string finish_reason(const Choice& choice) const {
    if (!choice.reason) return "stop";
    switch (*choice.reason) {
      case engine::FinishReason::kStop:
        return choice.calls.empty() && choice.num_calls_streamed == 0 ? "stop" : "tool_calls";
      case engine::FinishReason::kLength:
        return "length";
      case engine::FinishReason::kAbort:
        return "abort";
      case engine::FinishReason::kError:
        return "error";
    }
    return "stop";
  }

  ojson chunk(ojson choice) const {
    ojson c = ojson::object();
    c["id"] = id;
    c["object"] = chat() ? "chat.completion.chunk" : "text_completion";
    c["created"] = created;
    c["model"] = shape->model;
    c["choices"] = ojson::array({std::move(choice)});
    if (include_usage) c["usage"] = nullptr;
    return c;
  }
  static std::string sse(const ojson& value) { return "data: " + dump_json(value) + "\n\n"; }

  std::string new_call_id() const {
    if (shape->tool_format == ToolCallFormat::kMistral) return random_alnum(9);
    return "call_" + random_alnum(24);
  }

  ojson chat_chunk_choice(int index, ojson delta, ojson logprobs, ojson reason) const {
    ojson c = ojson::object();
    c["index"] = index;
    c["delta"] = std::move(delta);
    c["logprobs"] = std::move(logprobs);
    c["finish_reason"] = std::move(reason);
    return c;
  }

  void on_chat_delta(int index, Choice& choice, const engine::CompletionDelta& delta,
                     std::vector<std::string>* events) {
    if (stream && !choice.started) {
      choice.started = true;
      events->push_back(sse(chunk(
          chat_chunk_choice(index, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr))));
    }
    std::vector<ToolParserEvent> parsed;
    if (choice.parser) {
      parsed = choice.parser->feed(delta.text);
      if (delta.finish_reason) {
        auto rest = choice.parser->finish();
        parsed.insert(parsed.end(), std::make_move_iterator(rest.begin()),
                      std::make_move_iterator(rest.end()));
      }
    } else if (!delta.text.empty()) {
      ToolParserEvent event;
      event.content = delta.text;
      parsed.push_back(std::move(event));
    }
    for (ToolParserEvent& event : parsed) {
      if (event.kind == ToolParserEvent::Kind::kContent) {
        if (event.content.empty()) continue;
        if (stream) {
          events->push_back(sse(chunk(chat_chunk_choice(index, {{"content", event.content}},
                                                        take_pending(choice), nullptr))));
        } else {
          choice.text += event.content;
        }
        continue;
      }
      ToolCallOut out{new_call_id(), std::move(event.call)};
      if (!stream) {
        choice.calls.push_back(std::move(out));
        continue;
      }
      const int call_index = choice.num_calls_streamed++;
      ojson head = {{"index", call_index},
                    {"id", out.id},
                    {"type", "function"},
                    {"function", {{"name", out.call.name}, {"arguments", ""}}}};
      events->push_back(sse(chunk(chat_chunk_choice(
          index, {{"tool_calls", ojson::array({std::move(head)})}}, nullptr, nullptr))));
      ojson args = {{"index", call_index}, {"function", {{"arguments", out.call.arguments}}}};
      events->push_back(sse(chunk(chat_chunk_choice(
          index, {{"tool_calls", ojson::array({std::move(args)})}}, nullptr, nullptr))));
    }
    if (stream && delta.finish_reason && *delta.finish_reason != engine::FinishReason::kError) {
      events->push_back(sse(chunk(
          chat_chunk_choice(index, ojson::object(), take_pending(choice), finish_reason(choice)))));
    }
  }

  void on_completion_delta(int index, int prompt, Choice& choice,
                           const engine::CompletionDelta& delta, std::vector<std::string>* events) {
    std::string text;
    if (!choice.started) {
      choice.started = true;
      if (!shape->echo_text.empty()) text = shape->echo_text[prompt];
    }
    text += delta.text;
    if (!stream) {
      choice.text += text;
      return;
    }
    const bool final = delta.finish_reason && *delta.finish_reason != engine::FinishReason::kError;
    if (text.empty() && !final && choice.pending_logprobs.is_null()) return;
    ojson c = ojson::object();
    c["index"] = index;
    c["text"] = text;
    c["logprobs"] = take_pending(choice);
    c["finish_reason"] = final ? ojson(finish_reason(choice)) : ojson(nullptr);
    events->push_back(sse(chunk(std::move(c))));
  }

  ojson usage() const {
    int64_t prompt = 0, completion = 0, cached = 0;
    for (size_t i = 0; i < prompt_tokens.size(); ++i) {
      prompt += prompt_tokens[i];
      completion += generated_tokens[i];
      cached += cached_tokens[i];
    }
    ojson u = ojson::object();
    u["prompt_tokens"] = prompt;
    u["completion_tokens"] = completion;
    u["total_tokens"] = prompt + completion;
    u["prompt_tokens_details"] = {{"cached_tokens", cached}};
    return u;
  }

  ojson whole_choice(int index, Choice& choice) const {
    ojson c = ojson::object();
    c["index"] = index;
    if (!chat()) {
      c["text"] = choice.text;
      c["logprobs"] = choice.logprobs.is_null() ? ojson(nullptr) : choice.logprobs;
      c["finish_reason"] = finish_reason(choice);
      return c;
    }
    ojson message = ojson::object();
    message["role"] = "assistant";
    bool blank = true;
    for (char ch : choice.text) blank &= ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r';
    message["content"] = !choice.calls.empty() && blank ? ojson(nullptr) : ojson(choice.text);
    if (!choice.calls.empty()) {
      ojson calls = ojson::array();
      for (const ToolCallOut& call : choice.calls) {
        calls.push_back(
            {{"id", call.id},
             {"type", "function"},
             {"function", {{"name", call.call.name}, {"arguments", call.call.arguments}}}});
      }
      message["tool_calls"] = std::move(calls);
    }
    c["message"] = std::move(message);
    c["logprobs"] =
        shape->logprobs == LogprobsForm::kNone
            ? ojson(nullptr)
            : ojson({{"content", choice.logprobs.is_null() ? ojson::array() : choice.logprobs}});
    c["finish_reason"] = finish_reason(choice);
    return c;
  }
};

ResponseAssembler::ResponseAssembler(const PreparedRequest& request, std::string id,
                                     int64_t created)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.shape = request.shape ? request.shape : std::make_shared<const ResponseShape>();
  s.id = std::move(id);
  s.created = created;
  s.stream = request.stream;
  s.include_usage = request.stream && request.include_usage;
  const size_t num_prompts = std::max<size_t>(1, request.requests.size());
  s.choices.resize(num_prompts * static_cast<size_t>(std::max(1, s.shape->n)));
  for (Choice& choice : s.choices) {
    if (s.chat() && s.shape->tool_choice != ToolChoice::kNone &&
        s.shape->tool_format != ToolCallFormat::kNone) {
      choice.parser = std::make_unique<ToolCallParser>(s.shape->tool_format);
    }
  }
  for (size_t i = 0; i < s.choices.size(); ++i) {
    const size_t prompt = i / static_cast<size_t>(std::max(1, s.shape->n));
    if (!s.shape->echo_text.empty() && prompt < s.shape->echo_text.size()) {
      s.choices[i].text_offset = count_code_points(s.shape->echo_text[prompt]);
    }
  }
  s.prompt_tokens.assign(num_prompts, 0);
  s.cached_tokens.assign(num_prompts, 0);
  s.generated_tokens.assign(num_prompts, 0);
  for (size_t i = 0; i < num_prompts && i < s.shape->prompt_token_counts.size(); ++i) {
    s.prompt_tokens[i] = s.shape->prompt_token_counts[i];
  }
}

ResponseAssembler::~ResponseAssembler() = default;
ResponseAssembler::ResponseAssembler(ResponseAssembler&&) noexcept = default;

std::vector<std::string> ResponseAssembler::on_output(size_t request_index,
                                                      const engine::RequestOutput& output) {
  State& s = *state_;
  std::vector<std::string> events;
  if (request_index >= s.prompt_tokens.size()) return events;
  if (output.num_prompt_tokens > 0) s.prompt_tokens[request_index] = output.num_prompt_tokens;
  s.cached_tokens[request_index] = output.num_cached_prompt_tokens;
  s.generated_tokens[request_index] = output.num_generated_tokens;
  const int n = std::max(1, s.shape->n);
  for (const engine::CompletionDelta& delta : output.deltas) {
    if (delta.index < 0 || delta.index >= n) continue;
    const int index = static_cast<int>(request_index) * n + delta.index;
    Choice& choice = s.choices[static_cast<size_t>(index)];
    if (choice.finished) continue;
    if (delta.finish_reason) {
      choice.finished = true;
      choice.reason = delta.finish_reason;
      if (*delta.finish_reason == engine::FinishReason::kError && !s.error) {
        ApiError error;
        error.http_status = 500;
        error.type = "server_error";
        error.message = output.error.ok() ? "generation failed" : output.error.message();
        s.error = std::move(error);
      }
    }
    s.add_logprobs(choice, delta);
    if (s.chat()) {
      s.on_chat_delta(index, choice, delta, &events);
    } else {
      s.on_completion_delta(index, static_cast<int>(request_index), choice, delta, &events);
    }
  }
  return events;
}

std::string ResponseAssembler::finish() {
  State& s = *state_;
  if (s.stream) {
    std::string out;
    if (s.include_usage) {
      ojson c = ojson::object();
      c["id"] = s.id;
      c["object"] = s.chat() ? "chat.completion.chunk" : "text_completion";
      c["created"] = s.created;
      c["model"] = s.shape->model;
      c["choices"] = ojson::array();
      c["usage"] = s.usage();
      out += State::sse(c);
    }
    out += "data: [DONE]\n\n";
    return out;
  }
  ojson body = ojson::object();
  body["id"] = s.id;
  body["object"] = s.chat() ? "chat.completion" : "text_completion";
  body["created"] = s.created;
  body["model"] = s.shape->model;
  ojson choices = ojson::array();
  for (size_t i = 0; i < s.choices.size(); ++i) {
    Choice& choice = s.choices[i];
    if (choice.parser && !choice.finished) {
      // Defensive: a choice without a final delta still releases what it holds.
      for (ToolParserEvent& event : choice.parser->finish()) {
        if (event.kind == ToolParserEvent::Kind::kContent) {
          choice.text += event.content;
        } else {
          choice.calls.push_back({s.new_call_id(), std::move(event.call)});
        }
      }
    }
    choices.push_back(s.whole_choice(static_cast<int>(i), choice));
  }
  body["choices"] = std::move(choices);
  body["usage"] = s.usage();
  return dump_json(body);
}

std::optional<ApiError> ResponseAssembler::error() const { return state_->error; }

}  // namespace tessera::api

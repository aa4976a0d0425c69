// The OpenAI protocol without HTTP: request JSON -> validated engine requests (templating and
// tokenisation included, so the server runs these off its I/O threads), engine outputs ->
// response bodies or SSE events, and OpenAI-shaped error objects.
// Invariant: nothing here throws or aborts on client input; every rejection is an ApiError
// with a 4xx status (never 5xx for bad input: the official client retries 5xx).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tessera/engine/engine.h"

namespace tessera::text {
class Tokenizer;
class ChatTemplate;
}  // namespace tessera::text

namespace tessera::api {

// How a model writes tool calls in its output (see docs/openai_api.md).
enum class ToolCallFormat {
  kNone,        // no parsing: tool calls stay in the text
  kHermes,      // <tool_call>{"name": ..., "arguments": {...}}</tool_call> (Qwen2.5, SmolLM2)
  kLlama3Json,  // [<|python_tag|>]{"name": ..., "parameters": {...}} at the start (Llama-3.x)
  kDeepSeekV3,  // <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME...
  kMistral,  // [TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]
};
// The format a chat template's source implies (its tool-call markers, else its turn markers).
ToolCallFormat detect_tool_call_format(std::string_view chat_template_source);

// {"error": {"message", "type", "param", "code"}} with its HTTP status.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";  // | authentication_error | not_found_error |
                                               //   rate_limit_error | server_error | ...
  std::string param;                           // "" -> null
  std::string code;  // "" -> null (e.g. "context_length_exceeded", "model_not_found")
  std::string to_json() const;
};

// The model as the API presents it. Pointers are not owned and outlive every request.
struct ServedModel {
  std::string name;  // --served-model-name (what `model` must equal)
  const text::Tokenizer* tokenizer = nullptr;
  const text::ChatTemplate* chat_template = nullptr;  // null: chat requests get a 400
  int32_t max_model_len = 0;
  std::vector<int32_t> eos_token_ids;  // what ends a completion unless ignore_eos
  int64_t created = 0;                 // unix seconds, for /v1/models
  // How tool calls are parsed out of chat outputs: detect_tool_call_format(template source).
  ToolCallFormat tool_call_format = ToolCallFormat::kNone;
};

enum class Endpoint { kCompletions, kChatCompletions };

// One HTTP request, parsed and validated. A completions request with several prompts becomes
// several engine requests; choice index = prompt_index * n + choice.
struct PreparedRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::vector<engine::GenerateRequest> requests;  // [num_prompts], each non-empty
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  // Everything the assembler needs to shape the output (echo, logprobs form, tools, ...);
  // opaque to the server.
  std::shared_ptr<const struct ResponseShape> shape;
};

using Prepared = std::variant<PreparedRequest, ApiError>;

// POST /v1/completions and /v1/chat/completions bodies.
Prepared prepare_completion(std::string_view body, const ServedModel& model);
Prepared prepare_chat_completion(std::string_view body, const ServedModel& model);

// Turns engine outputs into what goes on the wire, for one PreparedRequest.
class ResponseAssembler {
 public:
  // `id` is the response id ("cmpl-..." / "chatcmpl-..."); `created` unix seconds.
  ResponseAssembler(const PreparedRequest& request, std::string id, int64_t created);
  ~ResponseAssembler();
  ResponseAssembler(ResponseAssembler&&) noexcept;

  // Streaming: the SSE events ("data: {...}\n\n") this output produces (maybe none).
  // Non-streaming: accumulates and returns nothing.
  std::vector<std::string> on_output(size_t request_index, const engine::RequestOutput& output);
  // Every engine request has finished: streaming -> the closing events (the usage chunk when
  // asked for, then "data: [DONE]\n\n"); non-streaming -> the whole JSON response body.
  std::string finish();
  // Any engine request ended with FinishReason::kError (the server answers 500 when not
  // streaming yet, else sends an error event before [DONE]).
  std::optional<ApiError> error() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Small routes: bodies in, JSON bodies out.
std::string models_response(const ServedModel& model);  // GET /v1/models
std::variant<std::string, ApiError> tokenize(std::string_view body, const ServedModel& model);
std::variant<std::string, ApiError> detokenize(std::string_view body, const ServedModel& model);

// The engine's Status from submit() as an ApiError (invalid_argument -> 400, kUnavailable ->
// 503, kResourceExhausted -> 429, anything else -> 500 server_error).
ApiError error_from_status(const Status& status);

}  // namespace tessera::api

// Private pieces shared by the api/ sources: the ResponseShape a prepared request hands to its
// assembler, strict JSON field readers that turn every type or range problem into an ApiError
// naming the field, and the request fields common to both generation endpoints.
// Invariant: nothing here throws; readers leave their output untouched when the field is absent.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/api/openai.h"
#include "tessera/sampling/grammar.h"

namespace tessera::api {

using ojson = nlohmann::ordered_json;

enum class LogprobsForm { kNone, kLegacy, kChat };
enum class ToolChoice { kNone, kAuto, kRequired, kNamed };

struct ResponseShape {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;
  int32_t n = 1;
  int32_t num_prompts = 1;
  std::vector<std::string> echo_text;  // [num_prompts] when echo, else empty
  LogprobsForm logprobs = LogprobsForm::kNone;
  const text::Tokenizer* tokenizer = nullptr;  // for logprob token strings
  std::vector<int32_t> prompt_token_counts;    // [num_prompts]
  // Chat tools: parsing is on when tool_choice is not none and the format is known.
  ToolCallFormat tool_format = ToolCallFormat::kNone;
  ToolChoice tool_choice = ToolChoice::kNone;
  std::string named_tool;  // tool_choice {"function": {"name"}}
};

// The error for a field of the wrong JSON type ("'temperature' must be a number, got string").
ApiError type_error(std::string_view param, std::string_view expected, const ojson& got);
ApiError range_error(std::string_view param, std::string message);
ApiError bad_request(std::string message, std::string param = "");

// Parses `body` as a JSON object (bounded nesting), or explains why not.
std::optional<ApiError> parse_body(std::string_view body, ojson* out);

// Field readers: absent or null leave `*out` alone and return nullopt.
std::optional<ApiError> read_bool(const ojson& obj, const char* key, bool* out);
std::optional<ApiError> read_double(const ojson& obj, const char* key, double* out, bool* present);
// Integers: JSON integers, or floats with an integral value (as pydantic's lax mode accepts),
// within [lo, hi].
std::optional<ApiError> read_int(const ojson& obj, const char* key, int64_t lo, int64_t hi,
                                 std::optional<int64_t>* out);
std::optional<ApiError> read_string(const ojson& obj, const char* key,
                                    std::optional<std::string>* out);

// `model`: absent or null means the served model; another name is 404 model_not_found.
std::optional<ApiError> check_model(const ojson& body, const ServedModel& model);

// Fields both generation endpoints share (sampling, stop, penalties, vLLM extras), written into
// `request`. `logprobs` is endpoint-specific and read by the caller.
std::optional<ApiError> read_common_fields(const ojson& body, const ServedModel& model,
                                           engine::GenerateRequest* request, int32_t* n);

// stream / stream_options.include_usage.
std::optional<ApiError> read_stream_fields(const ojson& body, PreparedRequest* prepared);

// What both endpoints read first: the body, `model`, the stream fields and the common
// sampling fields (request.n set); `shape` starts with the endpoint, model name, n and
// tokenizer.
struct RequestStart {
  ojson body;
  PreparedRequest prepared;
  engine::GenerateRequest request;
  std::shared_ptr<ResponseShape> shape;
};
std::optional<ApiError> start_request(std::string_view body_text, const ServedModel& model,
                                      Endpoint endpoint, RequestStart* start);

// The context-length check on one prompt, in OpenAI's words. `what` is "messages" or "prompt".
std::optional<ApiError> check_context(const engine::GenerateRequest& request,
                                      const ServedModel& model, std::string_view what);

// Token ids in [0, vocab) or a 400 naming `param`.
std::optional<ApiError> check_token_ids(const std::vector<int32_t>& ids, const ServedModel& model,
                                        std::string_view param);

// JSON text that is always valid UTF-8 (invalid bytes become U+FFFD).
std::string dump_json(const ojson& value);

// A random alphanumeric string (tool call ids).
std::string random_alnum(size_t length);

// The grammar of exactly one tool call in `format`'s syntax (kNone: Hermes) whose name is one
// of `names` and whose arguments are a JSON object (constrained_decoding.cc); null when a
// name cannot be an option (empty).
std::shared_ptr<const sampling::Grammar> tool_call_grammar(ToolCallFormat format,
                                                           const std::vector<std::string>& names);

}  // namespace tessera::api

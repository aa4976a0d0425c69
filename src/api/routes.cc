// The small routes: GET /v1/models, POST /tokenize and /detokenize in vLLM's shapes.
// Invariant: like the generation endpoints, bad input is a 4xx ApiError, never an exception.
#include <limits>

#include "src/api/api_internal.h"
#include "tessera/text/chat_template.h"
#include "tessera/text/tokenizer.h"

namespace tessera::api {

std::string models_response(const ServedModel& model) {
  ojson entry = ojson::object();
  entry["id"] = model.name;
  entry["object"] = "model";
  entry["created"] = model.created;
  entry["owned_by"] = "tessera";
  entry["max_model_len"] = model.max_model_len;
  ojson body = ojson::object();
  body["object"] = "list";
  body["data"] = ojson::array({std::move(entry)});
  return dump_json(body);
}

namespace {

std::variant<std::string, ApiError> tokens_response(const std::vector<int32_t>& tokens,
                                                    const ServedModel& model) {
  ojson body = ojson::object();
  body["count"] = tokens.size();
  body["max_model_len"] = model.max_model_len;
  body["tokens"] = tokens;
  return dump_json(body);
}

std::variant<std::string, ApiError> tokenize_impl(std::string_view text, const ServedModel& model) {
  if (model.tokenizer == nullptr) return bad_request("the server has no tokenizer");
  ojson body;
  if (auto e = parse_body(text, &body)) return *e;
  if (auto e = check_model(body, model)) return *e;
  const bool has_prompt = body.contains("prompt") && !body["prompt"].is_null();
  const bool has_messages = body.contains("messages") && !body["messages"].is_null();
  if (has_prompt == has_messages) {
    return bad_request("give exactly one of 'prompt' or 'messages'");
  }
  if (has_prompt) {
    std::optional<std::string> prompt;
    if (auto e = read_string(body, "prompt", &prompt)) return *e;
    bool add_special_tokens = true;
    if (auto e = read_bool(body, "add_special_tokens", &add_special_tokens)) return *e;
    return tokens_response(model.tokenizer->encode(*prompt, add_special_tokens), model);
  }
  // Messages: rendered exactly as /v1/chat/completions renders them (tools included).
  ojson chat = body;
  chat["stream"] = false;
  chat.erase("stream_options");
  // Counting tokens is not bound by the context length.
  ServedModel unbounded = model;
  unbounded.max_model_len = 0;
  auto prepared = prepare_chat_completion(dump_json(chat), unbounded);
  if (auto* error = std::get_if<ApiError>(&prepared)) return *error;
  return tokens_response(std::get<PreparedRequest>(prepared).requests.front().prompt_tokens, model);
}

std::variant<std::string, ApiError> detokenize_impl(std::string_view text,
                                                    const ServedModel& model) {
  if (model.tokenizer == nullptr) return bad_request("the server has no tokenizer");
  ojson body;
  if (auto e = parse_body(text, &body)) return *e;
  if (auto e = check_model(body, model)) return *e;
  auto it = body.find("tokens");
  if (it == body.end() || it->is_null()) return bad_request("'tokens' is required", "tokens");
  if (!it->is_array()) return type_error("tokens", "an array of token ids", *it);
  std::vector<int32_t> tokens;
  for (const auto& v : *it) {
    ojson wrapper = {{"tokens", v}};
    std::optional<int64_t> id;
    if (auto e = read_int(wrapper, "tokens", 0, std::numeric_limits<int32_t>::max(), &id)) {
      return *e;
    }
    if (!id) return type_error("tokens", "an array of token ids", v);
    tokens.push_back(static_cast<int32_t>(*id));
  }
  if (auto e = check_token_ids(tokens, model, "tokens")) return *e;
  ojson out = ojson::object();
  out["prompt"] = model.tokenizer->decode(tokens, /*skip_special_tokens=*/false);
  return dump_json(out);
}

}  // namespace

std::variant<std::string, ApiError> tokenize(std::string_view body, const ServedModel& model) {
  try {
    return tokenize_impl(body, model);
  } catch (const std::exception& e) {
    return bad_request(std::string("invalid request: ") + e.what());
  }
}

std::variant<std::string, ApiError> detokenize(std::string_view body, const ServedModel& model) {
  try {
    return detokenize_impl(body, model);
  } catch (const std::exception& e) {
    return bad_request(std::string("invalid request: ") + e.what());
  }
}

}  // namespace tessera::api

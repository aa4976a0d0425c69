// Strict readers for request fields and the fields both generation endpoints share: sampling,
// penalties, stop conditions and vLLM's extras, mapped onto engine::GenerateRequest.
// Invariant: a field of the wrong type or out of range is a 400 naming it; unknown fields are
// ignored (vLLM's behaviour), absent ones keep the engine's defaults.
#include <cmath>
#include <limits>

#include "src/api/api_internal.h"
#include "tessera/text/tokenizer.h"

namespace tessera::api {

namespace {

constexpr int kMaxNesting = 64;    // JSON depth a request may have
constexpr int64_t kMaxN = 128;     // completions per prompt
constexpr size_t kMaxStops = 256;  // stop strings (OpenAI allows 4; vLLM any)
constexpr int64_t kMaxLogitBias = 4096;

// Depth of [ / { nesting outside strings; parsing deeper bodies is refused up front so that
// no recursive walk (dump, templating) can exhaust the stack.
int max_nesting(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
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
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

std::optional<ApiError> parse_body(std::string_view body, ojson* out) {
  if (max_nesting(body) > kMaxNesting) {
    return bad_request("request body nests JSON deeper than " + std::to_string(kMaxNesting) +
                       " levels");
  }
  *out = ojson::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded()) {
    return bad_request("request body is not valid JSON (or not valid UTF-8)");
  }
  if (!out->is_object()) return bad_request("request body must be a JSON object");
  return std::nullopt;
}

std::optional<ApiError> read_bool(const ojson& obj, const char* key, bool* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return type_error(key, "a boolean", *it);
  *out = it->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> read_double(const ojson& obj, const char* key, double* out, bool* present) {
  if (present) *present = false;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) return type_error(key, "a number", *it);
  const double value = it->get<double>();
  if (!std::isfinite(value)) return range_error(key, std::string("'") + key + "' must be finite");
  *out = value;
  if (present) *present = true;
  return std::nullopt;
}

std::optional<ApiError> read_int(const ojson& obj, const char* key, int64_t lo, int64_t hi,
                                 std::optional<int64_t>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  auto out_of_range = [&] {
    return range_error(key, std::string("'") + key + "' must be an integer in [" +
                                std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                                dump_json(*it));
  };
  int64_t value = 0;
  if (it->is_number_unsigned()) {
    const uint64_t u = it->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return out_of_range();
    value = static_cast<int64_t>(u);
  } else if (it->is_number_integer()) {
    value = it->get<int64_t>();
  } else if (it->is_number_float()) {
    const double d = it->get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) return type_error(key, "an integer", *it);
    if (d < -9.2e18 || d > 9.2e18) return out_of_range();
    value = static_cast<int64_t>(d);
  } else {
    return type_error(key, "an integer", *it);
  }
  if (value < lo || value > hi) return out_of_range();
  *out = value;
  return std::nullopt;
}

std::optional<ApiError> read_string(const ojson& obj, const char* key,
                                    std::optional<std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) return type_error(key, "a string", *it);
  *out = it->get<std::string>();
  return std::nullopt;
}

std::optional<ApiError> check_model(const ojson& body, const ServedModel& model) {
  std::optional<std::string> name;
  if (auto e = read_string(body, "model", &name)) return e;
  if (name && *name != model.name) {
    ApiError error;
    error.http_status = 404;
    error.type = "not_found_error";
    error.param = "model";
    error.code = "model_not_found";
    error.message =
        "The model `" + *name + "` does not exist. This server serves `" + model.name + "`.";
    return error;
  }
  return std::nullopt;
}

namespace {

int64_t vocab_size(const ServedModel& model) {
  return model.tokenizer ? model.tokenizer->vocab_size() : std::numeric_limits<int32_t>::max();
}

std::optional<ApiError> read_sampling(const ojson& body, const ServedModel& model,
                                      sampling::SamplingParams* s) {
  double d = 0.0;
  bool present = false;
  if (auto e = read_double(body, "temperature", &d, &present)) return e;
  if (present) {
    if (d < 0.0)
      return range_error("temperature", "'temperature' must be >= 0, got " + std::to_string(d));
    s->temperature = static_cast<float>(d);
  }
  if (auto e = read_double(body, "top_p", &d, &present)) return e;
  if (present) {
    if (!(d > 0.0 && d <= 1.0)) {
      return range_error("top_p", "'top_p' must be in (0, 1], got " + std::to_string(d));
    }
    s->top_p = static_cast<float>(d);
  }
  if (auto e = read_double(body, "min_p", &d, &present)) return e;
  if (present) {
    if (!(d >= 0.0 && d <= 1.0)) {
      return range_error("min_p", "'min_p' must be in [0, 1], got " + std::to_string(d));
    }
    s->min_p = static_cast<float>(d);
  }
  if (auto e = read_double(body, "repetition_penalty", &d, &present)) return e;
  if (present) {
    if (!(d > 0.0)) {
      return range_error("repetition_penalty",
                         "'repetition_penalty' must be > 0, got " + std::to_string(d));
    }
    s->repetition_penalty = static_cast<float>(d);
  }
  for (const char* key : {"frequency_penalty", "presence_penalty"}) {
    if (auto e = read_double(body, key, &d, &present)) return e;
    if (!present) continue;
    if (!(d >= -2.0 && d <= 2.0)) {
      return range_error(key,
                         std::string("'") + key + "' must be in [-2, 2], got " + std::to_string(d));
    }
    (std::string_view(key) == "frequency_penalty" ? s->frequency_penalty : s->presence_penalty) =
        static_cast<float>(d);
  }
  std::optional<int64_t> i;
  if (auto e = read_int(body, "top_k", -1, std::numeric_limits<int32_t>::max(), &i)) return e;
  if (i) s->top_k = static_cast<int32_t>(*i);
  i.reset();
  if (auto e = read_int(body, "seed", std::numeric_limits<int64_t>::min(),
                        std::numeric_limits<int64_t>::max(), &i)) {
    return e;
  }
  if (i) s->seed = static_cast<uint64_t>(*i);

  auto bias = body.find("logit_bias");
  if (bias != body.end() && !bias->is_null()) {
    if (!bias->is_object()) return type_error("logit_bias", "an object", *bias);
    if (static_cast<int64_t>(bias->size()) > kMaxLogitBias) {
      return range_error(
          "logit_bias", "'logit_bias' has more than " + std::to_string(kMaxLogitBias) + " entries");
    }
    const int64_t vocab = vocab_size(model);
    for (auto it = bias->begin(); it != bias->end(); ++it) {
      const std::string& key = it.key();
      char* end = nullptr;
      errno = 0;
      const long long id = key.empty() ? -1 : std::strtoll(key.c_str(), &end, 10);
      if (key.empty() || errno != 0 || *end != '\0' || id < 0 || id >= vocab) {
        return range_error("logit_bias", "'logit_bias' keys must be token ids in [0, " +
                                             std::to_string(vocab) + "), got \"" + key + "\"");
      }
      if (!it->is_number()) return type_error("logit_bias", "a map of numbers", *it);
      const double value = it->get<double>();
      if (!(value >= -100.0 && value <= 100.0)) {
        return range_error("logit_bias",
                           "'logit_bias' values must be in [-100, 100], got " + dump_json(*it));
      }
      s->logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(value));
    }
  }
  return std::nullopt;
}

std::optional<ApiError> read_stop(const ojson& body, engine::GenerateRequest* request) {
  auto stop = body.find("stop");
  if (stop == body.end() || stop->is_null()) return std::nullopt;
  if (stop->is_string()) {
    if (stop->get_ref<const std::string&>().empty()) {
      return range_error("stop", "'stop' strings must not be empty");
    }
    request->stop.push_back(stop->get<std::string>());
    return std::nullopt;
  }
  if (!stop->is_array()) return type_error("stop", "a string or an array of strings", *stop);
  if (stop->size() > kMaxStops) {
    return range_error("stop", "'stop' has more than " + std::to_string(kMaxStops) + " strings");
  }
  for (const auto& s : *stop) {
    if (!s.is_string()) return type_error("stop", "an array of strings", s);
    if (s.get_ref<const std::string&>().empty()) {
      return range_error("stop", "'stop' strings must not be empty");
    }
    request->stop.push_back(s.get<std::string>());
  }
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> check_token_ids(const std::vector<int32_t>& ids, const ServedModel& model,
                                        std::string_view param) {
  const int64_t vocab = vocab_size(model);
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab) {
      return range_error(param, "'" + std::string(param) + "' has token id " + std::to_string(id) +
                                    ", outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  return std::nullopt;
}

std::optional<ApiError> read_common_fields(const ojson& body, const ServedModel& model,
                                           engine::GenerateRequest* request, int32_t* n) {
  if (auto e = read_sampling(body, model, &request->sampling)) return e;
  if (auto e = read_stop(body, request)) return e;

  constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
  std::optional<int64_t> value;
  if (auto e = read_int(body, "n", 1, kMaxN, &value)) return e;
  *n = value ? static_cast<int32_t>(*value) : 1;
  // max_completion_tokens (the newer name) wins over max_tokens when both are given.
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    value.reset();
    if (auto e = read_int(body, key, 1, kInt32Max, &value)) return e;
    if (value) request->max_tokens = static_cast<int32_t>(*value);
  }
  value.reset();
  if (auto e = read_int(body, "min_tokens", 0, kInt32Max, &value)) return e;
  if (value) request->min_tokens = static_cast<int32_t>(*value);
  if (request->max_tokens && request->min_tokens > *request->max_tokens) {
    return range_error("min_tokens", "'min_tokens' (" + std::to_string(request->min_tokens) +
                                         ") must not exceed max_tokens (" +
                                         std::to_string(*request->max_tokens) + ")");
  }
  value.reset();
  if (auto e = read_int(body, "priority", std::numeric_limits<int32_t>::min(), kInt32Max, &value)) {
    return e;
  }
  if (value) request->priority = static_cast<int32_t>(*value);

  auto ids = body.find("stop_token_ids");
  if (ids != body.end() && !ids->is_null()) {
    if (!ids->is_array()) return type_error("stop_token_ids", "an array of integers", *ids);
    ojson wrapper = ojson::object();
    for (const auto& id : *ids) {
      wrapper["stop_token_ids"] = id;
      std::optional<int64_t> one;
      if (auto e = read_int(wrapper, "stop_token_ids", 0, kInt32Max, &one)) return e;
      if (!one) return type_error("stop_token_ids", "an array of integers", id);
      request->stop_token_ids.push_back(static_cast<int32_t>(*one));
    }
    if (auto e = check_token_ids(request->stop_token_ids, model, "stop_token_ids")) return e;
  }
  if (auto e = read_bool(body, "ignore_eos", &request->ignore_eos)) return e;
  if (auto e = read_bool(body, "skip_special_tokens", &request->skip_special_tokens)) return e;
  if (auto e =
          read_bool(body, "include_stop_str_in_output", &request->include_stop_str_in_output)) {
    return e;
  }
  // `user` is accepted and ignored; best_of only as a synonym of n.
  std::optional<std::string> user;
  if (auto e = read_string(body, "user", &user)) return e;
  value.reset();
  if (auto e = read_int(body, "best_of", 1, kMaxN, &value)) return e;
  if (value && *value != *n) {
    return range_error("best_of", "'best_of' is not supported (only best_of == n)");
  }
  auto format = body.find("response_format");
  if (format != body.end() && !format->is_null()) {
    if (!format->is_object()) return type_error("response_format", "an object", *format);
    auto type = format->find("type");
    if (type == format->end() || !type->is_string() ||
        (*type != "text" && *type != "json_object" && *type != "json_schema")) {
      return range_error("response_format",
                         "'response_format.type' must be text, json_object or json_schema");
    }
    // NOTE: json_schema is decoded as any JSON object: the schema itself is not enforced yet.
    if (*type != "text") request->grammar = sampling::Grammar::json(/*object_only=*/true);
  }
  return std::nullopt;
}

std::optional<ApiError> read_stream_fields(const ojson& body, PreparedRequest* prepared) {
  if (auto e = read_bool(body, "stream", &prepared->stream)) return e;
  auto options = body.find("stream_options");
  if (options == body.end() || options->is_null()) return std::nullopt;
  if (!options->is_object()) return type_error("stream_options", "an object", *options);
  if (!prepared->stream) {
    return range_error("stream_options", "'stream_options' is only allowed with stream=true");
  }
  if (auto e = read_bool(*options, "include_usage", &prepared->include_usage)) {
    e->param = "stream_options.include_usage";
    return e;
  }
  return std::nullopt;
}

std::optional<ApiError> start_request(std::string_view body_text, const ServedModel& model,
                                      Endpoint endpoint, RequestStart* start) {
  if (auto e = parse_body(body_text, &start->body)) return e;
  if (auto e = check_model(start->body, model)) return e;
  start->prepared.endpoint = endpoint;
  if (auto e = read_stream_fields(start->body, &start->prepared)) return e;
  int32_t n = 1;
  if (auto e = read_common_fields(start->body, model, &start->request, &n)) return e;
  start->request.n = n;
  start->shape = std::make_shared<ResponseShape>();
  start->shape->endpoint = endpoint;
  start->shape->model = model.name;
  start->shape->n = n;
  start->shape->tokenizer = model.tokenizer;
  return std::nullopt;
}

std::optional<ApiError> check_context(const engine::GenerateRequest& request,
                                      const ServedModel& model, std::string_view what) {
  const int64_t prompt = static_cast<int64_t>(request.prompt_tokens.size());
  const int64_t limit = model.max_model_len;
  if (limit <= 0) return std::nullopt;
  ApiError error;
  error.code = "context_length_exceeded";
  error.param = std::string(what);
  if (request.max_tokens) {
    const int64_t completion = *request.max_tokens;
    if (prompt + completion <= limit) return std::nullopt;
    error.message = "This model's maximum context length is " + std::to_string(limit) +
                    " tokens. However, you requested " + std::to_string(prompt + completion) +
                    " tokens (" + std::to_string(prompt) + " in the " + std::string(what) + ", " +
                    std::to_string(completion) +
                    " in the completion). Please reduce the length of the " + std::string(what) +
                    " or completion.";
    return error;
  }
  if (prompt < limit) return std::nullopt;
  error.message = "This model's maximum context length is " + std::to_string(limit) +
                  " tokens. However, your " + std::string(what) + " resulted in " +
                  std::to_string(prompt) + " tokens, which leaves no room for the completion. " +
                  "Please reduce the length of the " + std::string(what) + ".";
  return error;
}

}  // namespace tessera::api

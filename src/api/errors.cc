// OpenAI error objects: ApiError's JSON form, the errors the readers build, and the mapping from
// an engine Status to an HTTP status.
// Invariant: every 4xx here is for the client's input; 5xx only for the server's own failures.
#include <fmt/format.h>

#include <cstdio>
#include <random>

#include "src/api/api_internal.h"

namespace tessera::api {

std::string dump_json(const ojson& value) {
  return value.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

std::string ApiError::to_json() const {
  ojson error = ojson::object();
  error["message"] = message;
  error["type"] = type;
  error["param"] = param.empty() ? ojson(nullptr) : ojson(param);
  error["code"] = code.empty() ? ojson(nullptr) : ojson(code);
  ojson body = ojson::object();
  body["error"] = std::move(error);
  return dump_json(body);
}

namespace {

const char* json_type_name(const ojson& value) {
  switch (value.type()) {
    case ojson::value_t::null:
      return "null";
    case ojson::value_t::object:
      return "object";
    case ojson::value_t::array:
      return "array";
    case ojson::value_t::string:
      return "string";
    case ojson::value_t::boolean:
      return "boolean";
    case ojson::value_t::number_integer:
    case ojson::value_t::number_unsigned:
      return "integer";
    case ojson::value_t::number_float:
      return "number";
    case ojson::value_t::binary:
      return "binary";
    case ojson::value_t::discarded:
      return "invalid";
  }
  return "unknown";
}

}  // namespace

ApiError type_error(std::string_view param, std::string_view expected, const ojson& got) {
  ApiError error;
  error.message = fmt::format("'{}' must be {}, got {}", param, expected, json_type_name(got));
  error.param = std::string(param);
  return error;
}

ApiError range_error(std::string_view param, std::string message) {
  ApiError error;
  error.message = std::move(message);
  error.param = std::string(param);
  return error;
}

ApiError bad_request(std::string message, std::string param) {
  ApiError error;
  error.message = std::move(message);
  error.param = std::move(param);
  return error;
}

ApiError error_from_status(const Status& status) {
  ApiError error;
  error.message = status.message();
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      error.http_status = 400;
      if (error.message.rfind("This model's maximum context length", 0) == 0) {
        error.code = "context_length_exceeded";
        error.param = "messages";
      }
      return error;
    case StatusCode::kNotFound:
      error.http_status = 404;
      error.type = "not_found_error";
      return error;
    case StatusCode::kResourceExhausted:
      error.http_status = 429;
      error.type = "rate_limit_error";
      error.code = "rate_limit_exceeded";
      return error;
    case StatusCode::kUnavailable:
      error.http_status = 503;
      error.type = "server_error";
      error.code = "service_unavailable";
      return error;
    case StatusCode::kOk:
      error.http_status = 500;
      error.type = "server_error";
      error.message = "internal error: an OK status was reported as an error";
      return error;
    case StatusCode::kUnimplemented:
    case StatusCode::kIoError:
    case StatusCode::kDataLoss:
    case StatusCode::kInternal:
      error.http_status = 500;
      error.type = "server_error";
      return error;
  }
  error.http_status = 500;
  error.type = "server_error";
  return error;
}

std::string random_alnum(size_t length) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, sizeof(kAlphabet) - 2);
  std::string out(length, 'a');
  for (char& c : out) c = kAlphabet[pick(rng)];
  return out;
}

}  // namespace tessera::api

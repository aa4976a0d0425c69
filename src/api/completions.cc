// POST /v1/completions: the body (prompt as a string, strings, token ids or lists of token ids)
// becomes one engine request per prompt, with the echo text and logprobs form for the assembler.
// Invariant: a returned PreparedRequest passes the context-length check for every prompt.
#include <limits>
#include <utility>

#include "src/api/api_internal.h"
#include "tessera/text/tokenizer.h"

namespace tessera::api {

namespace {

constexpr size_t kMaxPrompts = 1024;

struct Prompt {
  std::vector<int32_t> tokens;
  std::string text;  // echo text (decoded when the prompt was token ids)
  bool from_text = false;
};

// One element that must be a token id.
std::optional<ApiError> read_token(const ojson& value, int32_t* out) {
  ojson wrapper = ojson::object();
  wrapper["prompt"] = value;
  std::optional<int64_t> id;
  if (auto e = read_int(wrapper, "prompt", 0, std::numeric_limits<int32_t>::max(), &id)) {
    return e;
  }
  if (!id) return type_error("prompt", "a token id", value);
  *out = static_cast<int32_t>(*id);
  return std::nullopt;
}

std::optional<ApiError> token_list(const ojson& list, std::vector<int32_t>* out) {
  for (const auto& v : list) {
    int32_t id = 0;
    if (auto e = read_token(v, &id)) return e;
    out->push_back(id);
  }
  return std::nullopt;
}

std::optional<ApiError> read_prompts(const ojson& body, const ServedModel& model,
                                     std::vector<Prompt>* prompts) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return bad_request("'prompt' is required", "prompt");
  const text::Tokenizer& tok = *model.tokenizer;
  auto add_text = [&](const std::string& text) {
    prompts->push_back({tok.encode(text, /*add_special_tokens=*/true), text, true});
  };
  const auto not_a_prompt = [&] {
    return type_error("prompt",
                      "a string, an array of strings, an array of token ids or an array of "
                      "arrays of token ids",
                      *it);
  };
  if (it->is_string()) {
    add_text(it->get<std::string>());
  } else if (it->is_array()) {
    if (it->empty()) return bad_request("'prompt' must not be an empty array", "prompt");
    const ojson& first = it->front();
    if ((first.is_string() || first.is_array()) && it->size() > kMaxPrompts) {
      return bad_request("'prompt' has more than " + std::to_string(kMaxPrompts) + " prompts",
                         "prompt");
    }
    if (first.is_string()) {
      for (const auto& p : *it) {
        if (!p.is_string()) return not_a_prompt();
        add_text(p.get<std::string>());
      }
    } else if (first.is_number()) {
      Prompt prompt;
      if (auto e = token_list(*it, &prompt.tokens)) return e;
      prompts->push_back(std::move(prompt));
    } else if (first.is_array()) {
      for (const auto& p : *it) {
        if (!p.is_array()) return not_a_prompt();
        Prompt prompt;
        if (auto e = token_list(p, &prompt.tokens)) return e;
        prompts->push_back(std::move(prompt));
      }
    } else {
      return not_a_prompt();
    }
  } else {
    return not_a_prompt();
  }
  for (Prompt& p : *prompts) {
    if (p.tokens.empty()) return bad_request("'prompt' must not be empty", "prompt");
    if (auto e = check_token_ids(p.tokens, model, "prompt")) return e;
  }
  return std::nullopt;
}

Prepared prepare_completion_impl(std::string_view body_text, const ServedModel& model) {
  if (model.tokenizer == nullptr) {
    ApiError error = bad_request("the server has no tokenizer for this model");
    error.http_status = 500;
    error.type = "server_error";
    return error;
  }
  RequestStart start;
  if (auto e = start_request(body_text, model, Endpoint::kCompletions, &start)) return *e;
  const ojson& body = start.body;
  PreparedRequest& prepared = start.prepared;
  engine::GenerateRequest& base = start.request;
  std::shared_ptr<ResponseShape>& shape = start.shape;

  std::optional<int64_t> logprobs;
  if (auto e = read_int(body, "logprobs", 0, 20, &logprobs)) return *e;
  if (logprobs) {
    base.sampling.logprobs = true;
    base.sampling.top_logprobs = static_cast<int32_t>(*logprobs);
    shape->logprobs = LogprobsForm::kLegacy;
  }
  bool echo = false;
  if (auto e = read_bool(body, "echo", &echo)) return *e;
  if (echo && logprobs) {
    return bad_request(
        "'echo' together with 'logprobs' is not supported: this server does not compute prompt "
        "logprobs",
        "echo");
  }
  std::optional<std::string> suffix;
  if (auto e = read_string(body, "suffix", &suffix)) return *e;
  if (suffix && !suffix->empty()) return bad_request("'suffix' is not supported", "suffix");

  std::vector<Prompt> prompts;
  if (auto e = read_prompts(body, model, &prompts)) return *e;
  shape->num_prompts = static_cast<int32_t>(prompts.size());
  for (Prompt& p : prompts) {
    engine::GenerateRequest request = base;
    request.prompt_tokens = std::move(p.tokens);
    if (auto e = check_context(request, model, "prompt")) return *e;
    shape->prompt_token_counts.push_back(static_cast<int32_t>(request.prompt_tokens.size()));
    if (echo) {
      shape->echo_text.push_back(
          p.from_text ? p.text : model.tokenizer->decode(request.prompt_tokens, false));
    }
    prepared.requests.push_back(std::move(request));
  }
  prepared.shape = std::move(shape);
  return std::move(prepared);
}

}  // namespace

Prepared prepare_completion(std::string_view body, const ServedModel& model) {
  try {
    return prepare_completion_impl(body, model);
  } catch (const std::exception& e) {
    // NOTE: the readers check types before every access; this is a last guard so that no
    // exception can leave the api module.
    return bad_request(std::string("invalid request: ") + e.what());
  }
}

}  // namespace tessera::api

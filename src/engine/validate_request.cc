// Validation of a GenerateRequest before it is queued (see validate_request.h).
// Invariant: every rejection is invalid_argument (a client error) or kResourceExhausted.
#include "src/engine/validate_request.h"

#include "tessera/sampling/sampling_params.h"

namespace tessera::engine {

int32_t resolve_max_new_tokens(const GenerateRequest& request, int32_t max_model_len) {
  const int32_t prompt = static_cast<int32_t>(request.prompt_tokens.size());
  return request.max_tokens ? *request.max_tokens : max_model_len - prompt;
}

Status validate_request(const GenerateRequest& r, const RequestLimits& limits) {
  if (r.prompt_tokens.empty()) return invalid_argument("the prompt must not be empty");
  for (size_t i = 0; i < r.prompt_tokens.size(); ++i) {
    const int32_t id = r.prompt_tokens[i];
    if (id < 0 || id >= limits.vocab_size) {
      return invalid_argument("prompt token {} at position {} is out of the vocabulary [0, {})", id,
                              i, limits.vocab_size);
    }
  }
  TESSERA_RETURN_IF_ERROR(sampling::validate(r.sampling, limits.vocab_size));
  if (r.n < 1 || r.n > kMaxChoices) {
    return invalid_argument("n must be in [1, {}], got {}", kMaxChoices, r.n);
  }
  if (r.max_tokens && *r.max_tokens < 1) {
    return invalid_argument("max_tokens must be at least 1, got {}", *r.max_tokens);
  }
  if (r.min_tokens < 0) return invalid_argument("min_tokens must be >= 0, got {}", r.min_tokens);
  if (r.max_tokens && r.min_tokens > *r.max_tokens) {
    return invalid_argument("min_tokens ({}) must be <= max_tokens ({})", r.min_tokens,
                            *r.max_tokens);
  }
  for (const std::string& s : r.stop) {
    if (s.empty()) return invalid_argument("stop strings must not be empty");
  }
  for (int32_t id : r.stop_token_ids) {
    if (id < 0 || id >= limits.vocab_size) {
      return invalid_argument("stop_token_ids: {} is out of the vocabulary [0, {})", id,
                              limits.vocab_size);
    }
  }
  const int64_t prompt = static_cast<int64_t>(r.prompt_tokens.size());
  if (!r.max_tokens && prompt >= limits.max_model_len) {
    return invalid_argument(
        "This model's maximum context length is {} tokens. However, your messages resulted in "
        "{} tokens. Please reduce the length of the messages.",
        limits.max_model_len, prompt);
  }
  if (r.max_tokens && prompt + *r.max_tokens > limits.max_model_len) {
    return invalid_argument(
        "This model's maximum context length is {} tokens. However, you requested {} tokens "
        "({} in the messages, {} in the completion). Please reduce the length of the messages "
        "or completion.",
        limits.max_model_len, prompt + *r.max_tokens, prompt, *r.max_tokens);
  }
  const int64_t total = prompt + resolve_max_new_tokens(r, limits.max_model_len);
  const int64_t blocks = (total + limits.block_size - 1) / limits.block_size;
  if (blocks > limits.num_kv_blocks) {
    return make_error(StatusCode::kResourceExhausted,
                      "the request needs {} KV blocks ({} tokens) but the cache has {}; reduce "
                      "max_tokens or start the engine with more KV blocks",
                      blocks, total, limits.num_kv_blocks);
  }
  return Status::ok_status();
}

}  // namespace tessera::engine

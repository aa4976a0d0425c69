// Request validation shared by Engine::submit (and so by the library and HTTP APIs): the
// checks and their OpenAI-style wording, separate from the loop so they can be tested alone.
// Invariant: a request that passes can be scheduled (it fits the context and the KV pool).
#pragma once

#include <cstdint>

#include "tessera/core/status.h"
#include "tessera/engine/engine.h"

namespace tessera::engine {

inline constexpr int32_t kMaxChoices = 128;

struct RequestLimits {
  int64_t vocab_size = 0;
  int32_t max_model_len = 0;
  int32_t num_kv_blocks = 0;
  int32_t block_size = 16;
};

// The new-token limit of a valid request: max_tokens, or up to the context limit.
int32_t resolve_max_new_tokens(const GenerateRequest& request, int32_t max_model_len);

Status validate_request(const GenerateRequest& request, const RequestLimits& limits);

}  // namespace tessera::engine

// `tessera perplexity`, by llama.cpp's method: non-overlapping windows of `ctx` tokens, the
// first token of each window replaced by BOS when the tokenizer adds BOS, and only the second
// half of each window scored (logits at positions ctx/2 .. ctx-2 predicting the next token).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "src/apps/app_model.h"
#include "tessera/model/model.h"

namespace tessera::apps {

struct PerplexityOptions {
  AppModelOptions model;
  std::string file;
  int32_t ctx = 512;
  bool json = false;
};

struct PerplexityResult {
  double perplexity = 0.0;  // exp(mean NLL)
  double mean_nll = 0.0;    // nats per scored token
  int64_t tokens_scored = 0;
  int64_t num_windows = 0;
  int64_t tokens_evaluated = 0;  // tokens run through the model
  double seconds = 0.0;
};

// `tokens` is the whole tokenized text; bos, when set, replaces each window's first token.
// Needs at least 2 * ctx tokens (as llama.cpp does); the model's context must hold ctx.
Result<PerplexityResult> compute_perplexity(model::Model& model, std::span<const int32_t> tokens,
                                            int32_t ctx, std::optional<int32_t> bos);

int run_perplexity(const PerplexityOptions& options);

}  // namespace tessera::apps

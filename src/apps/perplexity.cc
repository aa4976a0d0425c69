// Perplexity over a text file by llama.cpp's windowed method (see perplexity.h).
// Invariant: each window starts from an empty KV cache; its first half is run without logits
// and its second half with all logits, so the scored rows see exactly the window's prefix.
#include "src/apps/perplexity.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

namespace tessera::apps {
namespace {

// log softmax(row)[target], in double.
double log_prob(const float* row, int64_t vocab, int32_t target) {
  float max_logit = row[0];
  for (int64_t i = 1; i < vocab; ++i) max_logit = std::max(max_logit, row[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(row[i] - max_logit));
  return static_cast<double>(row[target] - max_logit) - std::log(sum);
}

}  // namespace

Result<PerplexityResult> compute_perplexity(model::Model& model, std::span<const int32_t> tokens,
                                            int32_t ctx, std::optional<int32_t> bos) {
  if (ctx < 4) return invalid_argument("--ctx must be at least 4, got {}", ctx);
  if (static_cast<int64_t>(tokens.size()) < 2 * static_cast<int64_t>(ctx)) {
    return invalid_argument("the text has {} tokens; perplexity with --ctx {} needs at least {}",
                            tokens.size(), ctx, 2 * ctx);
  }
  if (ctx > model.max_context()) {
    return invalid_argument("--ctx {} exceeds the model context of {}", ctx, model.max_context());
  }
  const int64_t vocab = model.vocab_size();
  const int32_t first = ctx / 2;
  const int64_t num_windows = static_cast<int64_t>(tokens.size()) / ctx;
  OwnedTensor head_logits(DType::kF32, {1, vocab});
  OwnedTensor logits(DType::kF32, {ctx - first, vocab});
  std::vector<int32_t> window(ctx);

  PerplexityResult r;
  double nll = 0.0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t w = 0; w < num_windows; ++w) {
    std::copy_n(tokens.begin() + w * ctx, ctx, window.begin());
    if (bos) window[0] = *bos;
    model.reset();
    std::span<const int32_t> win(window);
    TESSERA_RETURN_IF_ERROR(model.forward(win.first(first), 0, false, head_logits.view()));
    TESSERA_RETURN_IF_ERROR(model.forward(win.subspan(first), first, true, logits.view()));
    // Row j - first holds the logits at position j, which predict token j + 1.
    for (int32_t j = first; j < ctx - 1; ++j) {
      const float* row = logits.data_as<float>() + static_cast<int64_t>(j - first) * vocab;
      nll -= log_prob(row, vocab, window[j + 1]);
      ++r.tokens_scored;
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.num_windows = num_windows;
  r.tokens_evaluated = num_windows * ctx;
  r.mean_nll = nll / static_cast<double>(r.tokens_scored);
  r.perplexity = std::exp(r.mean_nll);
  return r;
}

int run_perplexity(const PerplexityOptions& options) {
  std::ifstream in(options.file, std::ios::binary);
  if (!in) {
    fmt::print(stderr, "error: cannot read --file '{}'\n", options.file);
    return 1;
  }
  std::stringstream text;
  text << in.rdbuf();

  AppModelOptions model_options = options.model;
  model_options.max_context = options.ctx;
  Result<AppModel> app = open_app_model(model_options);
  if (!app.ok()) {
    fmt::print(stderr, "error: {}\n", app.status().message());
    return 1;
  }
  const text::Tokenizer& tok = *app->tokenizer;
  // As llama.cpp: tokenize with the model's special-token rule (BOS only if it adds one), and
  // put BOS at the start of every window only in that case.
  std::vector<int32_t> tokens = tok.encode(text.str(), /*add_special_tokens=*/true);
  std::optional<int32_t> bos;
  if (tok.add_bos() && tok.bos_id()) bos = tok.bos_id();
  Result<PerplexityResult> r = compute_perplexity(app->model(), tokens, options.ctx, bos);
  if (!r.ok()) {
    fmt::print(stderr, "error: {}\n", r.status().message());
    return 1;
  }
  const double tps = r->tokens_evaluated / std::max(r->seconds, 1e-9);
  if (options.json) {
    nlohmann::json j = {{"perplexity", r->perplexity},
                        {"mean_nll", r->mean_nll},
                        {"tokens_scored", r->tokens_scored},
                        {"windows", r->num_windows},
                        {"ctx", options.ctx},
                        {"tokens", tokens.size()},
                        {"seconds", r->seconds},
                        {"tokens_per_second", tps}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("perplexity: {:.4f} over {} scored tokens ({} windows of {}), {:.1f} tokens/s\n",
               r->perplexity, r->tokens_scored, r->num_windows, options.ctx, tps);
  }
  return 0;
}

}  // namespace tessera::apps

// LLM library API over the Engine (see llm.h): prompts become GenerateRequests, outputs are
// gathered per request on the engine thread and handed back once every request has finished.
// Invariant: a call returns only after every request it submitted has had its final output, so
// no callback outlives the call's state.
#include "tessera/engine/llm.h"

#include <condition_variable>
#include <mutex>
#include <utility>

#include "tessera/core/logging.h"

namespace tessera {
namespace {

// Results of one call's requests, filled on the engine thread.
struct Collector {
  std::mutex mu;
  std::condition_variable done_cv;
  std::vector<GenerateResult> results;
  int64_t num_open = 0;
  Status error;

  void add(size_t slot, engine::RequestOutput out) {
    std::lock_guard<std::mutex> lock(mu);
    GenerateResult& r = results[slot];
    r.num_cached_prompt_tokens = out.num_cached_prompt_tokens;
    for (engine::CompletionDelta& d : out.deltas) {
      Completion& c = r.completions[d.index];
      c.text += d.text;
      c.token_ids.insert(c.token_ids.end(), d.token_ids.begin(), d.token_ids.end());
      for (engine::SampledLogprobs& lp : d.logprobs) c.logprobs.push_back(std::move(lp));
      if (d.finish_reason) c.finish_reason = *d.finish_reason;
      if (!d.stop_reason.empty()) c.stop_reason = d.stop_reason;
    }
    if (!out.error.ok() && error.ok()) error = out.error;
    if (out.finished && --num_open == 0) done_cv.notify_all();
  }
};

}  // namespace

Result<std::unique_ptr<LLM>> LLM::from_pretrained(const std::string& path,
                                                  const LlmOptions& options) {
  std::unique_ptr<LLM> llm(new LLM());
  engine::PretrainedOptions p;
  p.backend = options.backend;
  p.threads = options.threads;
  p.max_context = options.max_model_len;
  // NOTE: the engine uses the paged cache only; the model's own single-sequence cache (used by
  // perplexity-style calls on model()) is kept in f16 to halve what it costs beside it.
  p.kv_dtype = DType::kF16;
  TESSERA_ASSIGN_OR_RETURN(llm->pretrained_, engine::open_pretrained(path, p));
  Result<text::ChatTemplate> chat_template =
      engine::load_chat_template(llm->pretrained_.loaded, *llm->pretrained_.tokenizer);
  if (chat_template.ok()) {
    llm->chat_template_.emplace(std::move(chat_template).value());
  } else {
    llm->chat_template_error_ = chat_template.status();
  }
  engine::EngineConfig config;
  config.block_size = options.block_size;
  config.num_kv_blocks = options.num_kv_blocks;
  config.max_num_seqs = options.max_num_seqs;
  config.enforce_eager = options.enforce_eager;
  config.max_num_batched_tokens = options.max_num_batched_tokens;
  config.max_model_len = options.max_model_len;
  config.enable_prefix_caching = options.enable_prefix_caching;
  config.kv_cache_dtype = options.kv_cache_dtype;
  config.seed = options.seed;
  TESSERA_ASSIGN_OR_RETURN(
      llm->engine_,
      engine::Engine::create(&llm->pretrained_.model(), &*llm->pretrained_.tokenizer, config));
  return llm;
}

LLM::~LLM() { engine_.reset(); }

engine::GenerateRequest LLM::make_request(std::vector<int32_t> prompt,
                                          const GenerateOptions& o) const {
  engine::GenerateRequest r;
  r.prompt_tokens = std::move(prompt);
  r.sampling = o.sampling;
  r.n = o.n;
  r.max_tokens = o.max_tokens;
  r.min_tokens = o.min_tokens;
  r.stop = o.stop;
  r.stop_token_ids = o.stop_token_ids;
  r.ignore_eos = o.ignore_eos;
  r.include_stop_str_in_output = o.include_stop_str_in_output;
  r.skip_special_tokens = o.skip_special_tokens;
  r.priority = o.priority;
  return r;
}

Result<std::vector<GenerateResult>> LLM::run(std::vector<std::vector<int32_t>> prompts,
                                             const GenerateOptions& options,
                                             const DeltaCallback* on_delta) {
  auto collector = std::make_shared<Collector>();
  collector->results.resize(prompts.size());
  std::vector<engine::GenerateRequest> requests;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerateResult& r = collector->results[i];
    r.prompt_token_ids = prompts[i];
    r.completions.resize(std::max(options.n, 1));
    for (int32_t c = 0; c < static_cast<int32_t>(r.completions.size()); ++c) {
      r.completions[c].index = c;
    }
    requests.push_back(make_request(std::move(prompts[i]), options));
  }
  Status failed;
  std::vector<engine::RequestId> submitted;
  for (size_t i = 0; i < requests.size(); ++i) {
    {
      std::lock_guard<std::mutex> lock(collector->mu);
      ++collector->num_open;
    }
    Result<engine::RequestId> id = engine_->submit(
        std::move(requests[i]), [collector, i, on_delta](engine::RequestOutput out) {
          if (on_delta != nullptr) {
            for (const engine::CompletionDelta& d : out.deltas) (*on_delta)(d);
          }
          collector->add(i, std::move(out));
        });
    if (!id.ok()) {
      std::lock_guard<std::mutex> lock(collector->mu);
      --collector->num_open;
      failed = id.status();
      break;
    }
    submitted.push_back(*id);
  }
  if (!failed.ok()) {
    for (engine::RequestId id : submitted) engine_->abort(id);
  }
  std::unique_lock<std::mutex> lock(collector->mu);
  collector->done_cv.wait(lock, [&] { return collector->num_open == 0; });
  if (!failed.ok()) return failed;
  if (!collector->error.ok()) return collector->error;
  return std::move(collector->results);
}

Result<std::vector<GenerateResult>> LLM::generate(const std::vector<std::string>& prompts,
                                                  const GenerateOptions& options) {
  std::vector<std::vector<int32_t>> ids;
  ids.reserve(prompts.size());
  for (const std::string& p : prompts) {
    ids.push_back(tokenizer().encode(p, options.add_special_tokens));
  }
  return run(std::move(ids), options, nullptr);
}

Result<std::vector<GenerateResult>> LLM::generate(std::span<const TokensPrompt> prompts,
                                                  const GenerateOptions& options) {
  std::vector<std::vector<int32_t>> ids;
  ids.reserve(prompts.size());
  for (const TokensPrompt& p : prompts) ids.push_back(p.token_ids);
  return run(std::move(ids), options, nullptr);
}

Result<GenerateResult> LLM::generate_stream(const std::string& prompt,
                                            const GenerateOptions& options,
                                            const DeltaCallback& on_delta) {
  std::vector<std::vector<int32_t>> ids = {tokenizer().encode(prompt, options.add_special_tokens)};
  TESSERA_ASSIGN_OR_RETURN(std::vector<GenerateResult> results,
                           run(std::move(ids), options, &on_delta));
  return std::move(results[0]);
}

const text::ChatTemplate* LLM::chat_template() const {
  return chat_template_ ? &*chat_template_ : nullptr;
}

Result<std::string> LLM::apply_chat_template(const nlohmann::ordered_json& messages,
                                             bool add_generation_prompt,
                                             const nlohmann::ordered_json& tools,
                                             const nlohmann::ordered_json& extra_context) const {
  if (!chat_template_) return chat_template_error_;
  return chat_template_->render(messages, tools, add_generation_prompt, extra_context);
}

Result<std::vector<GenerateResult>> LLM::chat(std::span<const Conversation> conversations,
                                              const GenerateOptions& options) {
  std::vector<std::vector<int32_t>> ids;
  for (const Conversation& conversation : conversations) {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    for (const ChatMessage& m : conversation) {
      messages.push_back({{"role", m.role}, {"content", m.content}});
    }
    TESSERA_ASSIGN_OR_RETURN(std::string text, apply_chat_template(messages));
    // The rendered text already holds the special tokens the template wants.
    ids.push_back(tokenizer().encode(text, /*add_special_tokens=*/false));
  }
  return run(std::move(ids), options, nullptr);
}

Result<GenerateResult> LLM::chat(const Conversation& conversation, const GenerateOptions& options) {
  TESSERA_ASSIGN_OR_RETURN(std::vector<GenerateResult> results,
                           chat(std::span<const Conversation>(&conversation, 1), options));
  return std::move(results[0]);
}

}  // namespace tessera

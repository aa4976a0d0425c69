// Engine: the step-loop thread and the thread-safe front (submit / abort / drain / stats).
// submit() and abort() only push onto mutex-protected inboxes and wake the loop; the loop owns
// the scheduler, block manager, runner and every RequestState, and calls callbacks without
// holding the inbox lock. Invariant: a request leaves `requests_` exactly when its final output
// is emitted, and in_flight_ counts accepted requests whose final output is not out yet. On a
// device backend a step whose sampled rows are all plain (request.device_sampling) keeps its
// logits in backend memory and draws with Backend::sample: only the ids reach the host.
#include "tessera/engine/engine.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "src/engine/request_state.h"
#include "src/engine/validate_request.h"
#include "tessera/backend/backend.h"
#include "tessera/core/check.h"
#include "tessera/core/logging.h"
#include "tessera/kv/block_manager.h"
#include "tessera/model/model.h"
#include "tessera/model/paged_kv_cache.h"
#include "tessera/runtime/model_runner.h"
#include "tessera/sched/scheduler.h"
#include "tessera/text/tokenizer.h"

namespace tessera::engine {
namespace {

// NOTE: the default KV pool (num_kv_blocks = 0) is capped at this many bytes so that an
// unconfigured engine does not take most of a machine's memory; at least one full-length
// sequence always fits.
constexpr int64_t kDefaultKvBudgetBytes = int64_t{1} << 30;

// Whether the draws of `r` can be Backend::sample's: the engine changes nothing in its rows
// before SequenceSampler's draw (no logit_bias, penalties or grammar mask) and wants no logprobs
// (docs/engine.md "Device sampling"). The min_tokens mask is per step: a choice samples on the
// device once it has min_tokens outputs (see step()).
bool plain_sampling(const GenerateRequest& r) {
  const sampling::SamplingParams& p = r.sampling;
  return !p.logprobs && p.logit_bias.empty() && p.repetition_penalty == 1.0f &&
         p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f && r.grammar == nullptr;
}

// Backend::sample's parameters for the next draw of `s` (the same stream: seed, step).
backend::SampleParams sample_params(const sampling::SequenceSampler& s) {
  const sampling::SamplingParams& p = s.params();
  return {.temperature = s.greedy() ? 0.0f : p.temperature,  // below 1e-5: greedy, as the host
          .top_k = p.top_k,
          .top_p = p.top_p,
          .min_p = p.min_p,
          .seed = s.seed(),
          .step = s.step()};
}

struct Pending {
  RequestId id = 0;
  GenerateRequest request;
  OutputCallback on_output;
};

struct Emission {
  OutputCallback* callback;  // owned by the request state, alive until the emission is done
  RequestOutput output;
  std::unique_ptr<RequestState> retired;  // set on the final output: destroyed afterwards
};

class EngineImpl final : public Engine {
 public:
  EngineImpl(model::Model* model, const text::Tokenizer* tokenizer, EngineConfig config,
             model::PagedKvCache cache)
      : model_(model),
        tokenizer_(tokenizer),
        config_(std::move(config)),
        cache_(std::move(cache)),
        blocks_({.num_blocks = config_.num_kv_blocks,
                 .block_size = config_.block_size,
                 .enable_prefix_caching = config_.enable_prefix_caching}),
        scheduler_({.max_num_batched_tokens = config_.max_num_batched_tokens,
                    .max_num_seqs = config_.max_num_seqs,
                    .enable_chunked_prefill = config_.enable_chunked_prefill},
                   &blocks_),
        runner_(model, &cache_,
                {.max_num_batched_tokens = config_.max_num_batched_tokens,
                 .max_num_seqs = config_.max_num_seqs,
                 .enable_graphs = !config_.enforce_eager,
                 .max_graph_batch = config_.max_graph_batch}),
        seed_gen_(config_.seed ? *config_.seed : std::random_device{}()) {
    limits_ = {.vocab_size = model->vocab_size(),
               .max_model_len = config_.max_model_len,
               .num_kv_blocks = config_.num_kv_blocks,
               .block_size = config_.block_size};
    row_scratch_.resize(model->vocab_size());
    thread_ = std::thread([this] { loop(); });
  }

  ~EngineImpl() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      accepting_ = false;
      abort_all_ = true;
      stop_ = true;
    }
    wake_cv_.notify_one();
    thread_.join();
  }

  Result<RequestId> submit(GenerateRequest request, OutputCallback on_output) override {
    TESSERA_RETURN_IF_ERROR(validate_request(request, limits_));
    std::lock_guard<std::mutex> lock(mu_);
    if (!accepting_) {
      return make_error(StatusCode::kUnavailable, "the engine is shutting down; retry elsewhere");
    }
    if (static_cast<int64_t>(inbox_.size()) + stats_.num_waiting >= config_.max_waiting) {
      return make_error(StatusCode::kResourceExhausted,
                        "too many requests waiting ({}); retry later", config_.max_waiting);
    }
    const RequestId id = next_id_++;
    inbox_.push_back({id, std::move(request), std::move(on_output)});
    ++in_flight_;
    wake_cv_.notify_one();
    return id;
  }

  void abort(RequestId id) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      abort_inbox_.push_back(id);
    }
    wake_cv_.notify_one();
  }

  void drain(std::chrono::steady_clock::time_point deadline) override {
    std::unique_lock<std::mutex> lock(mu_);
    accepting_ = false;
    if (!idle_cv_.wait_until(lock, deadline, [&] { return in_flight_ == 0; })) {
      abort_all_ = true;
      wake_cv_.notify_one();
      idle_cv_.wait(lock, [&] { return in_flight_ == 0; });
    }
  }

  EngineStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    EngineStats s = stats_;
    s.num_waiting += static_cast<int32_t>(inbox_.size());
    return s;
  }
  const EngineConfig& config() const override { return config_; }
  int32_t max_model_len() const override { return config_.max_model_len; }
  const text::Tokenizer& tokenizer() const override { return *tokenizer_; }

 private:
  void loop();
  void admit(Pending pending);
  void abort_request(RequestId id, FinishReason reason, const Status& error);
  void step();
  Status sample_in_backend(const runtime::StepLogits& logits);
  // n > 1, first token: `logits` is the host row ([vocab]), or null when `drawn` holds each
  // choice's token ([n], from Backend::sample).
  void start_choices(RequestState& state, const float* logits, std::span<const int32_t> drawn);
  // `drawn`: the token Backend::sample drew from this choice's stream; null: SequenceSampler
  // draws from the host `row`.
  void sample_choice(RequestState& state, int32_t choice, std::span<float> row,
                     const int32_t* drawn = nullptr);
  sampling::TokenChoice next_token(RequestState& state, int32_t choice, std::span<float> row,
                                   const int32_t* drawn);
  // Grammar-constrained choices: the token mask of the choice's state ([vocab]; empty span when
  // unconstrained), and after a token whether the grammar is complete with nothing more to take.
  std::span<const uint8_t> grammar_mask(RequestState& state, int32_t choice);
  bool advance_grammar(RequestState& state, int32_t choice, int32_t token);
  void fail_step(const sched::SchedulerOutput& out, const Status& error);
  void collect(RequestState& state);
  void emit();
  void publish_stats(bool stepped);

  model::Model* model_;
  const text::Tokenizer* tokenizer_;
  const EngineConfig config_;
  RequestLimits limits_;

  // Engine-thread state.
  model::PagedKvCache cache_;
  kv::BlockManager blocks_;
  sched::Scheduler scheduler_;
  runtime::ModelRunner runner_;
  std::unordered_map<RequestId, std::unique_ptr<RequestState>> requests_;
  struct Owner {
    RequestState* state;
    int32_t choice;
  };
  std::unordered_map<kv::SeqId, Owner> owners_;
  kv::SeqId next_seq_ = 1;
  std::mt19937_64 seed_gen_;
  std::vector<float> row_scratch_;  // [vocab]
  std::unique_ptr<sampling::TokenMask> token_mask_;  // built on the first grammar request
  std::vector<uint8_t> mask_scratch_;                // [vocab]
  std::vector<RequestState*> touched_;
  std::vector<Emission> emissions_;
  std::vector<backend::SampleParams> sample_params_;  // [rows] of a device-sampled step
  std::vector<int32_t> sampled_ids_, fork_ids_;       // its drawn ids; n > 1 extra choices'
  int64_t prompt_tokens_ = 0, generation_tokens_ = 0, num_steps_ = 0;
  int64_t device_sampled_tokens_ = 0;

  // Shared with callers, under mu_.
  mutable std::mutex mu_;
  std::condition_variable wake_cv_, idle_cv_;
  std::vector<Pending> inbox_;
  std::vector<RequestId> abort_inbox_;
  bool accepting_ = true, abort_all_ = false, stop_ = false;
  int64_t in_flight_ = 0;
  RequestId next_id_ = 1;
  EngineStats stats_;
  std::thread thread_;
};

void EngineImpl::loop() {
  while (true) {
    std::vector<Pending> arrivals;
    std::vector<RequestId> aborts;
    bool abort_all = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_cv_.wait(lock, [&] {
        // NOTE: abort_all_ stays set after a drain; it is acted on while work remains, never
        // a reason to wake on its own (that would spin).
        return stop_ || !inbox_.empty() || !abort_inbox_.empty() || !requests_.empty();
      });
      if (stop_ && inbox_.empty() && requests_.empty()) break;
      arrivals.swap(inbox_);
      aborts.swap(abort_inbox_);
      abort_all = abort_all_;
    }
    for (Pending& p : arrivals) admit(std::move(p));
    for (RequestId id : aborts) abort_request(id, FinishReason::kAbort, Status::ok_status());
    if (abort_all) {
      std::vector<RequestId> ids;
      for (const auto& [id, state] : requests_) ids.push_back(id);
      std::sort(ids.begin(), ids.end());
      for (RequestId id : ids) abort_request(id, FinishReason::kAbort, Status::ok_status());
    }
    emit();
    const bool stepped = !requests_.empty();
    if (stepped) step();
    emit();
    publish_stats(stepped);
  }
}

void EngineImpl::admit(Pending p) {
  const int32_t max_new = resolve_max_new_tokens(p.request, config_.max_model_len);
  const uint64_t seed = p.request.sampling.seed ? *p.request.sampling.seed : seed_gen_();
  auto state = std::make_unique<RequestState>(p.id, std::move(p.request), std::move(p.on_output),
                                              *tokenizer_, config_.eos_token_ids, max_new, seed);
  const kv::SeqId seq = next_seq_++;
  const GenerateRequest& r = state->request();
  Status s = scheduler_.add_request({.id = seq,
                                     .prompt = r.prompt_tokens,
                                     .max_new_tokens = max_new,
                                     .priority = r.priority,
                                     .cache_salt = r.cache_salt});
  state->device_sampling = model_->backend()->is_device() && plain_sampling(state->request());
  RequestState* raw = state.get();
  requests_.emplace(p.id, std::move(state));
  if (!s.ok()) {
    abort_request(p.id, FinishReason::kError, s);
    return;
  }
  raw->choice(0).seq = seq;
  owners_[seq] = {raw, 0};
}

// Ends every unfinished choice of `id` (unknown ids are ignored) and queues its final output.
void EngineImpl::abort_request(RequestId id, FinishReason reason, const Status& error) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  RequestState& state = *it->second;
  for (ChoiceState& c : state.choices()) {
    if (c.finish) continue;
    if (c.seq >= 0) {
      scheduler_.finish(c.seq, sched::FinishReason::kAborted);
      owners_.erase(c.seq);
    }
    state.finish_choice(c.index, reason);
  }
  if (!error.ok()) state.error = error;
  collect(state);
}

void EngineImpl::step() {
  sched::SchedulerOutput out = scheduler_.schedule();
  if (out.seqs.empty() && out.block_copies.empty()) {
    // Nothing can run now (should not happen: admission rejects what can never fit); do not
    // spin while waiting for an abort or new work.
    std::unique_lock<std::mutex> lock(mu_);
    wake_cv_.wait_for(lock, std::chrono::milliseconds(1));
    return;
  }
  // A step samples in backend memory only when every row it samples may (device backends).
  bool in_backend = model_->backend()->is_device();
  for (const sched::ScheduledSeq& s : out.seqs) {
    const sched::Sequence* seq = scheduler_.find(s.id);
    TESSERA_CHECK(seq != nullptr, "scheduled unknown sequence {}", s.id);
    prompt_tokens_ +=
        std::clamp(seq->num_prompt_tokens - s.num_computed_tokens, 0, s.num_new_tokens);
    Owner& owner = owners_.at(s.id);
    // A choice still under its min_tokens mask (eos / stop ids held back) samples on the host.
    if (s.sample && (!owner.state->device_sampling ||
                     !owner.state->masked_ids(owner.choice).empty())) {
      in_backend = false;
    }
    if (!owner.state->prompt_scheduled) {
      owner.state->prompt_scheduled = true;
      owner.state->num_cached_prompt_tokens = s.num_computed_tokens;
    }
  }
  Result<runtime::StepLogits> logits = runner_.execute(out, scheduler_, in_backend);
  ++num_steps_;
  if (!logits.ok()) {
    TESSERA_LOG_WARN("engine step failed: {}", logits.status().message());
    fail_step(out, logits.status());
    return;
  }
  if (logits->in_backend) {
    const Status s = sample_in_backend(*logits);
    if (!s.ok()) {
      TESSERA_LOG_WARN("engine step failed (device sampling): {}", s.message());
      fail_step(out, s);
    }
    return;
  }
  const int64_t vocab = model_->vocab_size();
  float* data = logits->logits.data_as<float>();
  for (size_t i = 0; i < logits->seq_ids.size(); ++i) {
    const kv::SeqId seq = logits->seq_ids[i];
    auto it = owners_.find(seq);
    TESSERA_CHECK(it != owners_.end(), "logits for unowned sequence {}", seq);
    RequestState& state = *it->second.state;
    const int32_t choice = it->second.choice;
    float* row = data + static_cast<int64_t>(i) * vocab;
    if (state.request().n > 1 && !state.forked) {
      start_choices(state, row, {});
    } else {
      sample_choice(state, choice, std::span<float>(row, vocab));
    }
    collect(state);
  }
}

// n > 1, right after the prompt's sampling step: forks choices 1..n-1 from choice 0 (sharing
// its KV blocks copy-on-write), then samples every choice from the same logits row. A fork the
// scheduler refuses (max_num_seqs) starts as a new sequence over the prompt plus its first token
// instead, which the prefix cache mostly serves.
void EngineImpl::start_choices(RequestState& state, const float* logits,
                               std::span<const int32_t> drawn) {
  const int64_t vocab = model_->vocab_size();
  state.forked = true;
  ChoiceState& first = state.choice(0);
  const kv::SeqId parent = first.seq;
  std::vector<bool> forked(state.request().n, false);
  for (int32_t i = 1; i < state.request().n; ++i) {
    ChoiceState& c = state.choice(i);
    c.sampler.emplace(first.sampler->fork(i));
    const kv::SeqId child = next_seq_++;
    if (scheduler_.fork(parent, child).ok()) {
      c.seq = child;
      owners_[child] = {&state, i};
      forked[i] = true;
    }
  }
  for (int32_t i = state.request().n - 1; i >= 0; --i) {
    std::span<float> row;
    if (logits != nullptr) {
      std::copy(logits, logits + vocab, row_scratch_.begin());
      row = std::span<float>(row_scratch_.data(), vocab);
    }
    const int32_t* d = drawn.empty() ? nullptr : &drawn[i];
    ChoiceState& c = state.choice(i);
    if (i == 0 || forked[i]) {
      sample_choice(state, i, row, d);
      continue;
    }
    const sampling::TokenChoice t = next_token(state, i, row, d);
    const bool last = state.max_new_tokens() <= 1;
    if (state.on_token(i, t, last, advance_grammar(state, i, t.token))) continue;
    std::vector<int32_t> prompt = state.request().prompt_tokens;
    prompt.push_back(t.token);
    const kv::SeqId seq = next_seq_++;
    Status s = scheduler_.add_request({.id = seq,
                                       .prompt = std::move(prompt),
                                       .max_new_tokens = state.max_new_tokens() - 1,
                                       .priority = state.request().priority,
                                       .cache_salt = state.request().cache_salt});
    if (!s.ok()) {
      state.error = s;
      state.finish_choice(i, FinishReason::kError);
      continue;
    }
    c.seq = seq;
    owners_[seq] = {&state, i};
  }
}

// A device-sampled step: one Backend::sample over the step's rows (plus, for a request's first
// token with n > 1, one per further choice over its row); then the tokens as on the host path.
// Nothing changes before every draw succeeded.
Status EngineImpl::sample_in_backend(const runtime::StepLogits& logits) {
  backend::Backend& be = *model_->backend();
  const int64_t rows = static_cast<int64_t>(logits.seq_ids.size());
  if (rows == 0) return {};
  sample_params_.clear();
  for (const kv::SeqId seq : logits.seq_ids) {
    const Owner& o = owners_.at(seq);
    sample_params_.push_back(sample_params(*o.state->choice(o.choice).sampler));
  }
  sampled_ids_.resize(static_cast<size_t>(rows));
  TESSERA_RETURN_IF_ERROR(
      be.sample(logits.logits, sample_params_, Tensor(sampled_ids_.data(), DType::kI32, {rows})));
  fork_ids_.clear();
  for (int64_t i = 0; i < rows; ++i) {
    RequestState& state = *owners_.at(logits.seq_ids[i]).state;
    if (state.request().n == 1 || state.forked) continue;
    for (int32_t c = 1; c < state.request().n; ++c) {
      const backend::SampleParams p = sample_params(state.choice(0).sampler->fork(c));
      int32_t id = 0;
      TESSERA_RETURN_IF_ERROR(
          be.sample(logits.logits.slice_rows(i, i + 1), {&p, 1}, Tensor(&id, DType::kI32, {1})));
      fork_ids_.push_back(id);
    }
  }
  size_t next_fork = 0;
  std::vector<int32_t> drawn;
  for (int64_t i = 0; i < rows; ++i) {
    const Owner o = owners_.at(logits.seq_ids[i]);
    RequestState& state = *o.state;
    if (state.request().n > 1 && !state.forked) {
      drawn.assign(1, sampled_ids_[i]);
      drawn.insert(drawn.end(), fork_ids_.begin() + next_fork,
                   fork_ids_.begin() + next_fork + (state.request().n - 1));
      next_fork += state.request().n - 1;
      start_choices(state, nullptr, drawn);
    } else {
      sample_choice(state, o.choice, {}, &sampled_ids_[i]);
    }
    collect(state);
  }
  return {};
}

sampling::TokenChoice EngineImpl::next_token(RequestState& state, int32_t choice,
                                             std::span<float> row, const int32_t* drawn) {
  ChoiceState& c = state.choice(choice);
  ++generation_tokens_;
  if (drawn != nullptr) {
    c.sampler->skip_step();  // the draw Backend::sample made from this stream
    ++device_sampled_tokens_;
    sampling::TokenChoice t;
    t.token = *drawn;
    return t;
  }
  return c.sampler->sample(row, state.masked_ids(choice), grammar_mask(state, choice));
}

void EngineImpl::sample_choice(RequestState& state, int32_t choice, std::span<float> row,
                               const int32_t* drawn) {
  ChoiceState& c = state.choice(choice);
  const kv::SeqId seq = c.seq;
  const sched::Sequence* s = scheduler_.find(seq);
  TESSERA_CHECK(s != nullptr, "sampling unknown sequence {}", seq);
  const sampling::TokenChoice t = next_token(state, choice, row, drawn);
  const bool last = s->num_output_tokens() + 1 >= s->max_new_tokens;
  const std::optional<FinishReason> reason =
      state.on_token(choice, t, last, advance_grammar(state, choice, t.token));
  if (reason == FinishReason::kStop) {
    scheduler_.finish(seq, sched::FinishReason::kStop);
  } else {
    scheduler_.append_token(seq, t.token);  // finishes it at max_new_tokens
  }
  if (reason) {
    owners_.erase(seq);
    TESSERA_CHECK(scheduler_.find(seq) == nullptr, "finished choice's sequence {} still live", seq);
  }
}

std::span<const uint8_t> EngineImpl::grammar_mask(RequestState& state, int32_t choice) {
  ChoiceState& c = state.choice(choice);
  if (!c.grammar) return {};
  if (!token_mask_) {
    token_mask_ = std::make_unique<sampling::TokenMask>(*tokenizer_, config_.eos_token_ids);
  }
  token_mask_->allowed(*c.grammar, mask_scratch_);
  mask_scratch_.resize(static_cast<size_t>(model_->vocab_size()), 0);  // ids past the tokenizer
  return mask_scratch_;
}

bool EngineImpl::advance_grammar(RequestState& state, int32_t choice, int32_t token) {
  ChoiceState& c = state.choice(choice);
  if (!c.grammar) return false;
  if (std::find(config_.eos_token_ids.begin(), config_.eos_token_ids.end(), token) !=
      config_.eos_token_ids.end()) {
    return false;  // eos (only sampled once complete) ends the choice through on_token
  }
  if (tokenizer_->is_special(token) || !c.grammar->advance(tokenizer_->token_to_piece(token))) {
    // Only when every allowed id had -inf logits (the sampler then falls back): end here.
    TESSERA_LOG_WARN("request {} choice {}: token {} leaves the grammar; stopping",
                     state.id(), choice, token);
    return true;
  }
  return c.grammar->is_complete() && !c.grammar->can_continue();
}

// A failed forward pass: the requests it carried end with kError; the others carry on.
void EngineImpl::fail_step(const sched::SchedulerOutput& out, const Status& error) {
  std::vector<RequestId> ids;
  for (const sched::ScheduledSeq& s : out.seqs) {
    auto it = owners_.find(s.id);
    if (it != owners_.end()) ids.push_back(it->second.state->id());
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (RequestId id : ids) abort_request(id, FinishReason::kError, error);
}

// Queues the request's news (once per step); a finished request is retired with it.
void EngineImpl::collect(RequestState& state) {
  if (std::find(touched_.begin(), touched_.end(), &state) == touched_.end()) {
    touched_.push_back(&state);
  }
}

void EngineImpl::emit() {
  for (RequestState* state : touched_) {
    if (!state->has_news() && !state->finished()) continue;
    Emission e{&state->on_output, state->take_output(), nullptr};
    if (e.output.finished) {
      auto it = requests_.find(state->id());
      e.retired = std::move(it->second);
      requests_.erase(it);
    }
    emissions_.push_back(std::move(e));
  }
  touched_.clear();
  int64_t num_retired = 0;
  for (Emission& e : emissions_) {
    const bool final_output = e.output.finished;
    if (*e.callback) (*e.callback)(std::move(e.output));
    if (final_output) ++num_retired;
  }
  emissions_.clear();
  if (num_retired > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_ -= num_retired;
    if (in_flight_ == 0) idle_cv_.notify_all();
  }
}

void EngineImpl::publish_stats(bool stepped) {
  const kv::PrefixCacheStats& pc = blocks_.prefix_cache_stats();
  std::lock_guard<std::mutex> lock(mu_);
  stats_.num_running = static_cast<int32_t>(scheduler_.running().size());
  stats_.num_waiting = static_cast<int32_t>(scheduler_.waiting().size());
  stats_.kv_cache_usage =
      1.0 - static_cast<double>(blocks_.num_free_blocks()) / std::max(1, blocks_.num_blocks());
  stats_.num_preemptions = scheduler_.num_preemptions();
  stats_.prompt_tokens = prompt_tokens_;
  stats_.generation_tokens = generation_tokens_;
  stats_.device_sampled_tokens = device_sampled_tokens_;
  stats_.graph_steps = runner_.stats().graph_replays;
  stats_.graph_captures = runner_.stats().graph_captures;
  stats_.prefix_cache_queries = pc.num_query_tokens;
  stats_.prefix_cache_hits = pc.num_hit_tokens;
  stats_.num_steps = num_steps_;
  (void)stepped;
}

int64_t kv_bytes_per_block(const model::ModelConfig& c, int32_t block_size, DType dtype) {
  return 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * block_size *
         (dtype == DType::kF16 ? 2 : 4);
}

}  // namespace

Result<std::unique_ptr<Engine>> Engine::create(model::Model* model,
                                               const text::Tokenizer* tokenizer,
                                               const EngineConfig& config) {
  if (model == nullptr || tokenizer == nullptr) {
    return invalid_argument("Engine::create needs a model and a tokenizer");
  }
  EngineConfig c = config;
  if (c.block_size <= 0 || c.max_num_seqs <= 0 || c.max_num_batched_tokens <= 0 ||
      c.max_waiting <= 0 || c.num_kv_blocks < 0 || c.max_model_len < 0) {
    return invalid_argument(
        "engine config: block_size, max_num_seqs, max_num_batched_tokens and max_waiting must "
        "be positive, num_kv_blocks and max_model_len >= 0");
  }
  if (c.max_model_len == 0) c.max_model_len = model->max_context();
  if (c.max_model_len > model->max_context()) {
    return invalid_argument(
        "max_model_len {} exceeds the model's context of {} tokens (load it with a larger "
        "max_context)",
        c.max_model_len, model->max_context());
  }
  const int32_t full_seq_blocks = (c.max_model_len + c.block_size - 1) / c.block_size;
  if (c.num_kv_blocks == 0) {
    const int64_t wanted =
        (int64_t{c.max_num_seqs} * c.max_model_len / 4 + c.block_size - 1) / c.block_size;
    const int64_t budget =
        kDefaultKvBudgetBytes / kv_bytes_per_block(model->config(), c.block_size, c.kv_cache_dtype);
    c.num_kv_blocks =
        static_cast<int32_t>(std::max<int64_t>(full_seq_blocks, std::min(wanted, budget)));
  }
  if (c.eos_token_ids.empty()) {
    for (int64_t id : model->config().eos_token_id) {
      c.eos_token_ids.push_back(static_cast<int32_t>(id));
    }
    if (auto eos = tokenizer->eos_id()) c.eos_token_ids.push_back(*eos);
    std::sort(c.eos_token_ids.begin(), c.eos_token_ids.end());
    c.eos_token_ids.erase(std::unique(c.eos_token_ids.begin(), c.eos_token_ids.end()),
                          c.eos_token_ids.end());
  }
  TESSERA_ASSIGN_OR_RETURN(model::PagedKvCache cache,
                           model::PagedKvCache::create(model->backend(), model->config(),
                                                       c.num_kv_blocks, c.block_size,
                                                       c.kv_cache_dtype));
  TESSERA_LOG_INFO(
      "engine: {} KV blocks of {} tokens ({:.1f} MiB), max_model_len {}, "
      "max_num_seqs {}, max_num_batched_tokens {}",
      c.num_kv_blocks, c.block_size,
      c.num_kv_blocks *
          static_cast<double>(kv_bytes_per_block(model->config(), c.block_size, c.kv_cache_dtype)) /
          (1 << 20),
      c.max_model_len, c.max_num_seqs, c.max_num_batched_tokens);
  return std::unique_ptr<Engine>(
      std::make_unique<EngineImpl>(model, tokenizer, std::move(c), std::move(cache)));
}

}  // namespace tessera::engine

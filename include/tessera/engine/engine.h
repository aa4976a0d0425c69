// Engine: the request lifecycle around one model. A single engine thread runs the step loop
// (schedule -> ModelRunner::execute -> sample -> detokenize -> emit); submit() and abort() are
// thread-safe, never block on the loop, and outputs leave through each request's callback.
// Invariant: every accepted request gets exactly one final output (finished = true) — stop,
// length, abort or error — and then no more calls of its callback.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tessera/core/dtype.h"
#include "tessera/core/status.h"
#include "tessera/sampling/sampling_params.h"

namespace tessera::model {
class Model;
}
namespace tessera::text {
class Tokenizer;
}
namespace tessera::sampling {
class Grammar;
}

namespace tessera::engine {

using RequestId = uint64_t;

enum class FinishReason {
  kStop,    // eos, a stop token id or a stop string
  kLength,  // max_tokens or the context limit
  kAbort,   // abort(), client disconnect, or shutdown past its deadline
  kError,   // the step failed (the output's `error` says why); other requests continue
};
const char* to_string(FinishReason reason);  // "stop" | "length" | "abort" | "error"

struct GenerateRequest {
  std::vector<int32_t> prompt_tokens;  // non-empty, each in [0, vocab)
  sampling::SamplingParams sampling;
  int32_t n = 1;                       // completions sharing the prompt's KV (copy-on-write)
  // New tokens per completion; nullopt: until the context limit (max_model_len - prompt).
  std::optional<int32_t> max_tokens;
  int32_t min_tokens = 0;              // eos / stop ids are masked until this many are out
  std::vector<std::string> stop;       // stop strings; the matched text is not returned
  std::vector<int32_t> stop_token_ids; // in addition to the model's eos ids
  bool ignore_eos = false;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;     // in the detokenized text
  int32_t priority = 0;                // lower runs first; FCFS among equals
  uint64_t cache_salt = 0;             // prefix-cache namespace; 0 = shared
  std::string request_id;              // caller's label for logs; may be empty
  // Constrained decoding: each completion only samples tokens that keep its output in this
  // grammar, and stops (kStop) once the output is complete and nothing more fits; eos is
  // allowed only when complete. Null: unconstrained.
  std::shared_ptr<const sampling::Grammar> grammar;
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

// One sampled token's logprob and its top alternatives (most likely first).
struct SampledLogprobs {
  TokenLogprob sampled;
  std::vector<TokenLogprob> top;  // [top_logprobs]
};

// New output of one completion (choice) since its previous delta.
struct CompletionDelta {
  int32_t index = 0;                  // choice index in [0, n)
  std::vector<int32_t> token_ids;     // tokens sampled since the last delta
  std::string text;                   // whole UTF-8 characters only; held back near a stop string
  std::vector<SampledLogprobs> logprobs;  // one per token id when logprobs were asked for
  std::optional<FinishReason> finish_reason;  // set once, on this choice's last delta
  std::string stop_reason;            // the stop string matched, when there was one
};

struct RequestOutput {
  RequestId id = 0;
  std::vector<CompletionDelta> deltas;  // choices with news this step
  bool finished = false;                // every choice has finished; the last call
  int32_t num_prompt_tokens = 0;
  int32_t num_cached_prompt_tokens = 0; // prompt tokens served from the prefix cache
  int32_t num_generated_tokens = 0;     // over all choices so far
  Status error;                         // why, when a choice finished with kError
};

// Called on the engine thread, in order, for each request's outputs. It must not block (post
// the output elsewhere) and must not call back into the engine except abort().
using OutputCallback = std::function<void(RequestOutput output)>;

struct EngineConfig {
  int32_t block_size = 16;
  int32_t num_kv_blocks = 0;            // 0: enough for max_num_seqs * max_model_len / 4
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;
  int32_t max_model_len = 0;            // 0: the model's context length
  bool enable_prefix_caching = true;
  bool enable_chunked_prefill = true;
  int32_t max_waiting = 4096;           // submit() fails with kResourceExhausted beyond this
  DType kv_cache_dtype = DType::kF32;   // f32 or f16 (the paged cache's element type)
  // Ids that end a completion unless ignore_eos; empty: the model config's eos_token_id plus
  // the tokenizer's eos (resolved in config()).
  std::vector<int32_t> eos_token_ids;
  // Seeds the per-engine generator that gives requests without a seed their own; nullopt:
  // from std::random_device.
  std::optional<uint64_t> seed;
  // Run every step op by op: no decode-step graphs (docs/cuda.md "CUDA graphs"), as vLLM's
  // --enforce-eager. Graphs apply only on backends that support them (CUDA).
  bool enforce_eager = false;
  int32_t max_graph_batch = 0;  // largest graph batch; 0: max_num_seqs
};

// A point-in-time view for /metrics and logs (counters are totals since start).
struct EngineStats {
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  double kv_cache_usage = 0.0;          // used blocks / all blocks, in [0, 1]
  int64_t num_preemptions = 0;
  int64_t prompt_tokens = 0;            // prompt tokens computed (prefix-cache hits excluded)
  int64_t generation_tokens = 0;
  int64_t device_sampled_tokens = 0;    // of which Backend::sample drew on a device backend
  int64_t graph_steps = 0;              // steps run by replaying a captured decode graph
  int64_t graph_captures = 0;           // decode graphs captured (one per bucket)
  int64_t prefix_cache_queries = 0;     // prompt tokens looked up in the prefix cache
  int64_t prefix_cache_hits = 0;        // of which were found
  int64_t num_steps = 0;
};

class Engine {
 public:
  // `model` and `tokenizer` are not owned and must outlive the engine. Starts the loop thread.
  static Result<std::unique_ptr<Engine>> create(model::Model* model,
                                                const text::Tokenizer* tokenizer,
                                                const EngineConfig& config);
  virtual ~Engine() = default;  // aborts what is left, joins the loop

  // Validates (invalid_argument with an OpenAI-worded message, e.g. the context length one)
  // and queues. The callback receives every output of this request.
  virtual Result<RequestId> submit(GenerateRequest request, OutputCallback on_output) = 0;
  // Ends the request with kAbort (its callback gets the final output). Unknown or finished
  // ids are ignored. Safe from any thread, including inside a callback.
  virtual void abort(RequestId id) = 0;
  // Stops accepting (submit fails with kUnavailable), lets running requests finish until
  // `deadline`, then aborts the rest; returns when nothing is in flight.
  virtual void drain(std::chrono::steady_clock::time_point deadline) = 0;

  virtual EngineStats stats() const = 0;
  virtual const EngineConfig& config() const = 0;  // with the 0 defaults resolved
  virtual int32_t max_model_len() const = 0;
  virtual const text::Tokenizer& tokenizer() const = 0;
};

}  // namespace tessera::engine

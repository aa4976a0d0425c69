// ModelRunner: turns one sched::Scheduler step into a packed ForwardBatch (positions, block
// tables, slot mapping, logits rows), runs the block copies the step owes and then the model's
// paged forward pass, and hands back one logits row per sampling sequence (host memory, or
// the backend's when the caller samples there). Invariant: the runner allocates only at
// construction (and on a model's first-use workspace growth); a step's KV writes go exactly to
// the slots its block tables name.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "tessera/backend/backend.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/model/batch.h"
#include "tessera/model/model.h"
#include "tessera/model/paged_kv_cache.h"
#include "tessera/runtime/step_graphs.h"
#include "tessera/sched/scheduler.h"

namespace tessera::runtime {

struct ModelRunnerConfig {
  int32_t max_num_batched_tokens = 2048;  // as the scheduler's token budget
  int32_t max_num_seqs = 64;              // as the scheduler's sequence cap
  // Decode-step graphs (docs/cuda.md "CUDA graphs"), on backends that support them: pure-decode
  // steps of up to max_graph_batch sequences (0: max_num_seqs) replay a graph captured per
  // (batch, context) bucket; context buckets start at min_graph_context tokens and double.
  bool enable_graphs = true;
  int32_t max_graph_batch = 0;
  int32_t min_graph_context = 512;
};

// What the runner did so far (for metrics and tests).
struct ModelRunnerStats {
  int64_t eager_steps = 0;            // forward passes run op by op (graph warm-ups included)
  int64_t graph_replays = 0;          // steps run by replaying a captured graph
  int64_t graph_captures = 0;         // graphs captured (one per bucket)
  int64_t capture_failures = 0;       // buckets whose capture failed (they stay eager)
  int64_t device_metadata_steps = 0;  // steps whose metadata ops read from backend memory
};

// The logits of one step: row i belongs to seq_ids[i] (the step's `sample` sequences, in
// scheduling order).
struct StepLogits {
  std::vector<sched::SeqId> seq_ids;  // [num_sampled]
  Tensor logits;                      // f32 [num_sampled, vocab]; valid until the next execute
  bool in_backend = false;  // logits is the model backend's memory (device: not host-readable)
};

class ModelRunner {
 public:
  // `model` and `cache` are not owned and must outlive the runner; the cache's block size must
  // be the block manager's.
  ModelRunner(model::Model* model, model::PagedKvCache* cache, const ModelRunnerConfig& config);

  // Runs `step` (from scheduler.schedule(); token ids are read from `scheduler`). Block copies
  // run first, even when no sequence is scheduled. `logits_in_backend` on a device backend: the
  // logits stay in backend memory (for Backend::sample; nothing is downloaded); else (and always
  // on a host backend) they are host memory.
  Result<StepLogits> execute(const sched::SchedulerOutput& step, const sched::Scheduler& scheduler,
                             bool logits_in_backend = false);

  // Fills `batch` for `step` (exposed for tests). Fails on a step that does not fit the
  // runner's limits or names unknown sequences.
  Status build_batch(const sched::SchedulerOutput& step, const sched::Scheduler& scheduler,
                     model::ForwardBatch* batch) const;

  const ModelRunnerStats& stats() const { return stats_; }
  bool graphs_enabled() const { return limits_.max_batch > 0; }

 private:
  // Uploads `b`'s metadata into metadata_ and binds b->in_backend to it (false: too large for
  // the buffer; the ops then stage the host vectors).
  Result<bool> upload_metadata(model::ForwardBatch* b);
  // Runs the pure-decode batch_ through its bucket's graph (warm-up and capture on first use);
  // the step's logits are rows 0..n-1 of the returned device tensor.
  Result<Tensor> run_graph_step(GraphBucket bucket);
  void capture(GraphBucket bucket, const Tensor& logits);

  model::Model* model_;
  model::PagedKvCache* cache_;
  ModelRunnerConfig config_;
  model::ForwardBatch batch_;
  OwnedTensor logits_;                    // f32 [max_num_seqs, vocab]
  backend::BackendTensor device_logits_;  // f32 [max_num_seqs, vocab]; device backends only
  // Device backends: every step's metadata, packed (MetadataLayout), at one fixed address.
  backend::BackendTensor metadata_;  // i32 [capacity]
  std::vector<int32_t> packed_;      // host staging of the same layout
  StepGraphLimits limits_;           // max_batch 0: no graphs
  model::ForwardBatch padded_;       // the current graph step, padded to its bucket
  std::map<GraphBucket, std::unique_ptr<backend::StepGraph>> graphs_;
  std::set<GraphBucket> failed_buckets_;
  ModelRunnerStats stats_;
};

}  // namespace tessera::runtime

// ModelRunner: turns one sched::Scheduler step into a packed ForwardBatch (positions, block
// tables, slot mapping, logits rows), runs the block copies the step owes and then the model's
// paged forward pass, and hands back one logits row per sampling sequence (host memory, or
// the backend's when the caller samples there). Invariant: the runner allocates only at
// construction (and on a model's first-use workspace growth); a step's KV writes go exactly to
// the slots its block tables name.
#pragma once

#include <cstdint>
#include <vector>

#include "tessera/backend/backend.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/model/batch.h"
#include "tessera/model/model.h"
#include "tessera/model/paged_kv_cache.h"
#include "tessera/sched/scheduler.h"

namespace tessera::runtime {

struct ModelRunnerConfig {
  int32_t max_num_batched_tokens = 2048;  // as the scheduler's token budget
  int32_t max_num_seqs = 64;              // as the scheduler's sequence cap
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

 private:
  model::Model* model_;
  model::PagedKvCache* cache_;
  ModelRunnerConfig config_;
  model::ForwardBatch batch_;
  OwnedTensor logits_;                    // f32 [max_num_seqs, vocab]
  backend::BackendTensor device_logits_;  // f32 [max_num_seqs, vocab]; device backends only
};

}  // namespace tessera::runtime

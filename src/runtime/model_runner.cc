// ModelRunner: scheduler step -> ForwardBatch -> paged forward (see model_runner.h).
// Invariant: token row r of sequence s sits at position num_computed + (r - query_start[s]) and
// writes its K/V to slot block_table[pos / block_size] * block_size + pos % block_size.
#include "tessera/runtime/model_runner.h"

#include <algorithm>

#include "tessera/core/check.h"

namespace tessera::runtime {

ModelRunner::ModelRunner(model::Model* model, model::PagedKvCache* cache,
                         const ModelRunnerConfig& config)
    : model_(model), cache_(cache), config_(config) {
  TESSERA_CHECK(model != nullptr && cache != nullptr);
  TESSERA_CHECK(config.max_num_batched_tokens > 0 && config.max_num_seqs > 0,
                "bad runner limits: {} tokens, {} seqs", config.max_num_batched_tokens,
                config.max_num_seqs);
  model_->reserve_batch(config.max_num_batched_tokens);
  logits_ = OwnedTensor(DType::kF32, {config.max_num_seqs, model->vocab_size()});
  backend::Backend* be = model->backend();
  if (be != nullptr && be->is_device()) {
    Result<backend::BackendTensor> dev =
        be->allocate(DType::kF32, {config.max_num_seqs, model->vocab_size()});
    TESSERA_CHECK(dev.ok(), "device logits [{}, {}]: {}", config.max_num_seqs, model->vocab_size(),
                  dev.status().message());
    device_logits_ = std::move(*dev);
  }
  const size_t t = static_cast<size_t>(config.max_num_batched_tokens);
  const size_t s = static_cast<size_t>(config.max_num_seqs);
  batch_.tokens.reserve(t);
  batch_.positions.reserve(t);
  batch_.slot_mapping.reserve(t);
  batch_.logits_indices.reserve(s);
  batch_.query_start.reserve(s + 1);
  batch_.seq_lens.reserve(s);
}

Status ModelRunner::build_batch(const sched::SchedulerOutput& step,
                                const sched::Scheduler& scheduler,
                                model::ForwardBatch* batch) const {
  batch->clear();
  const int32_t num_seqs = static_cast<int32_t>(step.seqs.size());
  if (num_seqs > config_.max_num_seqs) {
    return invalid_argument("step has {} sequences; the runner was sized for {}", num_seqs,
                            config_.max_num_seqs);
  }
  const int32_t bs = cache_->block_size();
  int32_t max_blocks = 1;
  for (const sched::ScheduledSeq& s : step.seqs) {
    max_blocks = std::max(max_blocks, static_cast<int32_t>(s.block_table.size()));
  }
  batch->max_blocks_per_seq = max_blocks;
  batch->block_tables.assign(static_cast<size_t>(num_seqs) * max_blocks, -1);
  batch->query_start.push_back(0);
  for (int32_t i = 0; i < num_seqs; ++i) {
    const sched::ScheduledSeq& s = step.seqs[i];
    const sched::Sequence* seq = scheduler.find(s.id);
    const int32_t len = s.num_computed_tokens + s.num_new_tokens;
    if (seq == nullptr || s.num_new_tokens <= 0 || len > seq->num_tokens()) {
      return invalid_argument(
          "step entry for sequence {} ({} + {} tokens) does not match the "
          "scheduler's state",
          s.id, s.num_computed_tokens, s.num_new_tokens);
    }
    if (static_cast<int64_t>(s.block_table.size()) * bs < len) {
      return invalid_argument("sequence {}: {} blocks of {} cannot hold {} tokens", s.id,
                              s.block_table.size(), bs, len);
    }
    if (batch->num_tokens() + s.num_new_tokens > config_.max_num_batched_tokens) {
      return invalid_argument("step has more than the {} tokens the runner was sized for",
                              config_.max_num_batched_tokens);
    }
    std::copy(s.block_table.begin(), s.block_table.end(),
              batch->block_tables.begin() + static_cast<size_t>(i) * max_blocks);
    for (int32_t pos = s.num_computed_tokens; pos < len; ++pos) {
      batch->tokens.push_back(seq->tokens[pos]);
      batch->positions.push_back(pos);
      batch->slot_mapping.push_back(s.block_table[pos / bs] * bs + pos % bs);
    }
    batch->seq_lens.push_back(len);
    batch->query_start.push_back(batch->num_tokens());
    if (s.sample) batch->logits_indices.push_back(batch->num_tokens() - 1);
  }
  return {};
}

Result<StepLogits> ModelRunner::execute(const sched::SchedulerOutput& step,
                                        const sched::Scheduler& scheduler, bool logits_in_backend) {
  for (const kv::BlockCopy& c : step.block_copies) {
    TESSERA_RETURN_IF_ERROR(cache_->copy_block(c.src, c.dst));
  }
  StepLogits out;
  if (step.seqs.empty()) return out;
  TESSERA_RETURN_IF_ERROR(build_batch(step, scheduler, &batch_));
  batch_.logits_in_backend = logits_in_backend && !device_logits_.view.empty();
  Tensor logits = (batch_.logits_in_backend ? device_logits_.view : logits_.view())
                      .slice_rows(0, batch_.num_logits());
  TESSERA_RETURN_IF_ERROR(model_->forward_batch(batch_, *cache_, logits));
  for (const sched::ScheduledSeq& s : step.seqs) {
    if (s.sample) out.seq_ids.push_back(s.id);
  }
  out.logits = logits;
  out.in_backend = batch_.logits_in_backend;
  return out;
}

}  // namespace tessera::runtime

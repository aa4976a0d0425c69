// ModelRunner: scheduler step -> ForwardBatch -> paged forward (see model_runner.h).
// Invariant: token row r of sequence s sits at position num_computed + (r - query_start[s]) and
// writes its K/V to slot block_table[pos / block_size] * block_size + pos % block_size.
#include "tessera/runtime/model_runner.h"

#include <algorithm>

#include "tessera/core/check.h"
#include "tessera/core/logging.h"

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
    // NOTE: one buffer for every step's metadata, so ops on a device read it in place (nothing
    // is staged per op) and a captured graph finds the next step's values at the same address.
    const int32_t bs = cache->block_size();
    const int32_t max_blocks = (std::max(model->max_context(), 1) + bs - 1) / bs;
    const MetadataLayout capacity =
        MetadataLayout::of(config.max_num_batched_tokens, config.max_num_seqs, max_blocks);
    Result<backend::BackendTensor> meta = be->allocate(DType::kI32, {capacity.total});
    TESSERA_CHECK(meta.ok(), "step metadata [{}]: {}", capacity.total, meta.status().message());
    metadata_ = std::move(*meta);
    if (config.enable_graphs && be->supports_graphs()) {
      const int32_t cap = config.max_graph_batch > 0 ? config.max_graph_batch : config.max_num_seqs;
      limits_.max_batch = std::min({cap, config.max_num_seqs, config.max_num_batched_tokens});
      limits_.max_context = max_blocks * bs;
      limits_.block_size = bs;
      limits_.min_context = config.min_graph_context;
    }
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
  for (const sched::ScheduledSeq& s : step.seqs) {
    if (s.sample) out.seq_ids.push_back(s.id);
  }
  const int64_t n = batch_.num_logits();
  std::optional<GraphBucket> bucket;
  if (graphs_enabled() && is_pure_decode(batch_)) {
    bucket = choose_graph_bucket(limits_, batch_.num_seqs(),
                                 *std::max_element(batch_.seq_lens.begin(), batch_.seq_lens.end()));
  }
  if (bucket.has_value()) {
    TESSERA_ASSIGN_OR_RETURN(Tensor device_logits, run_graph_step(*bucket));
    out.in_backend = logits_in_backend;
    out.logits = device_logits.slice_rows(0, n);
    if (!logits_in_backend) {
      out.logits = logits_.view().slice_rows(0, n);
      TESSERA_RETURN_IF_ERROR(
          model_->backend()->download(device_logits.slice_rows(0, n), out.logits));
    }
    return out;
  }
  if (!metadata_.view.empty()) {
    TESSERA_ASSIGN_OR_RETURN(bool on_device, upload_metadata(&batch_));
    if (on_device) ++stats_.device_metadata_steps;
  }
  batch_.logits_in_backend = logits_in_backend && !device_logits_.view.empty();
  Tensor logits =
      (batch_.logits_in_backend ? device_logits_.view : logits_.view()).slice_rows(0, n);
  TESSERA_RETURN_IF_ERROR(model_->forward_batch(batch_, *cache_, logits));
  ++stats_.eager_steps;
  out.logits = logits;
  out.in_backend = batch_.logits_in_backend;
  return out;
}

Result<bool> ModelRunner::upload_metadata(model::ForwardBatch* b) {
  const MetadataLayout layout = MetadataLayout::of(*b);
  if (layout.total > metadata_.view.numel()) return false;
  pack_metadata(*b, &packed_);
  const Tensor host(packed_.data(), DType::kI32, {layout.total});
  TESSERA_RETURN_IF_ERROR(
      model_->backend()->copy(host, metadata_.view.slice_rows(0, layout.total)));
  bind_backend_operands(metadata_.view, layout, b);
  return true;
}

Result<Tensor> ModelRunner::run_graph_step(GraphBucket bucket) {
  pad_decode_batch(batch_, bucket, cache_->block_size(), &padded_);
  TESSERA_ASSIGN_OR_RETURN(bool on_device, upload_metadata(&padded_));
  TESSERA_CHECK(on_device, "graph bucket ({}, {}) does not fit the metadata buffer", bucket.batch,
                bucket.context);
  ++stats_.device_metadata_steps;
  padded_.logits_in_backend = true;
  const Tensor logits = device_logits_.view.slice_rows(0, bucket.batch);
  auto it = graphs_.find(bucket);
  if (it != graphs_.end()) {
    TESSERA_RETURN_IF_ERROR(model_->backend()->replay(*it->second));
    ++stats_.graph_replays;
    return logits;
  }
  // First step of this bucket: run it op by op (its real result, and the warm-up that creates
  // lazily built state such as kernel tables), then record the same ops for later steps.
  TESSERA_RETURN_IF_ERROR(model_->forward_batch(padded_, *cache_, logits));
  ++stats_.eager_steps;
  if (!failed_buckets_.contains(bucket)) capture(bucket, logits);
  return logits;
}

void ModelRunner::capture(GraphBucket bucket, const Tensor& logits) {
  backend::Backend& be = *model_->backend();
  Status status = be.begin_capture();
  if (status.ok()) {
    const Status forward = model_->forward_batch(padded_, *cache_, logits);
    Result<std::unique_ptr<backend::StepGraph>> graph = be.end_capture();  // always ends it
    if (!forward.ok()) {
      status = forward;
    } else if (!graph.ok()) {
      status = graph.status();
    } else {
      graphs_.emplace(bucket, std::move(*graph));
      ++stats_.graph_captures;
      return;
    }
  }
  failed_buckets_.insert(bucket);
  ++stats_.capture_failures;
  TESSERA_LOG_WARN("decode graph for {} sequences x {} tokens not captured ({}); it runs op by op",
                   bucket.batch, bucket.context, status.message());
}

}  // namespace tessera::runtime

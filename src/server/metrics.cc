// ServerMetrics over prometheus-cpp core: families named as vLLM names them, each labelled
// model_name; serialised with prometheus::TextSerializer (no pull exposer, the server answers
// GET /metrics itself). Invariant: counters copied from EngineStats only ever grow (they are
// advanced by the difference to the engine's running totals under one mutex).
#include "tessera/server/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <array>
#include <mutex>

namespace tessera::server {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;

// Seconds; close to vLLM's buckets so dashboards written for it read sensibly.
const Histogram::BucketBoundaries kTtftBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08,
                                                  0.1,   0.25,  0.5,  0.75, 1.0,  2.5,  5.0,
                                                  7.5,   10.0,  20.0, 40.0, 80.0};
const Histogram::BucketBoundaries kItlBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                                 0.3,  0.4,   0.5,  0.75,  1.0, 2.5,  5.0,
                                                 7.5,  10.0,  20.0, 40.0,  80.0};
const Histogram::BucketBoundaries kE2eBuckets = {0.3,  0.5,  0.8,  1.0,  1.5,  2.0,  2.5,
                                                 5.0,  10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                                                 60.0, 120., 240., 480., 960.};

void advance_to(Counter& counter, double total) {
  const double delta = total - counter.Value();
  if (delta > 0) counter.Increment(delta);
}

}  // namespace

struct ServerMetrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  Gauge* running = nullptr;
  Gauge* waiting = nullptr;
  Gauge* kv_usage = nullptr;
  Counter* prompt_tokens = nullptr;
  Counter* generation_tokens = nullptr;
  Counter* preemptions = nullptr;
  Counter* prefix_queries = nullptr;
  Counter* prefix_hits = nullptr;
  Counter* device_sampled = nullptr;
  Counter* graph_steps = nullptr;
  Counter* graph_captures = nullptr;
  Histogram* ttft = nullptr;
  Histogram* itl = nullptr;
  Histogram* e2e = nullptr;
  std::array<Counter*, 4> finished{};  // by FinishReason
  std::mutex scrape_mutex;
};

ServerMetrics::ServerMetrics(const std::string& model_name) : impl_(std::make_unique<Impl>()) {
  prometheus::Registry& r = *impl_->registry;
  const prometheus::Labels labels = {{"model_name", model_name}};
  impl_->running = &BuildGauge()
                        .Name("vllm:num_requests_running")
                        .Help("Number of requests in model execution batches.")
                        .Register(r)
                        .Add(labels);
  impl_->waiting = &BuildGauge()
                        .Name("vllm:num_requests_waiting")
                        .Help("Number of requests waiting to be processed.")
                        .Register(r)
                        .Add(labels);
  impl_->kv_usage = &BuildGauge()
                         .Name("vllm:kv_cache_usage_perc")
                         .Help("KV-cache usage. 1 means 100 percent usage.")
                         .Register(r)
                         .Add(labels);
  auto counter = [&](const char* name, const char* help) {
    return &BuildCounter().Name(name).Help(help).Register(r).Add(labels);
  };
  impl_->prompt_tokens = counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.");
  impl_->generation_tokens =
      counter("vllm:generation_tokens_total", "Number of generation tokens processed.");
  impl_->preemptions =
      counter("vllm:num_preemptions_total", "Cumulative number of preemptions from the engine.");
  impl_->prefix_queries = counter("vllm:prefix_cache_queries_total",
                                  "Prefix cache queries, in terms of number of queried tokens.");
  impl_->prefix_hits = counter("vllm:prefix_cache_hits_total",
                               "Prefix cache hits, in terms of number of cached tokens.");
  // Tessera's own (no vLLM equivalent): how many generation tokens the device sampler drew.
  impl_->device_sampled =
      counter("tessera:device_sampled_tokens_total",
              "Generation tokens drawn by the backend's sample op on the device.");
  impl_->graph_steps = counter("tessera:graph_steps_total",
                               "Decode steps run by replaying a captured CUDA graph.");
  impl_->graph_captures =
      counter("tessera:graph_captures_total", "Decode-step graphs captured (one per bucket).");
  impl_->ttft = &BuildHistogram()
                     .Name("vllm:time_to_first_token_seconds")
                     .Help("Histogram of time to first token in seconds.")
                     .Register(r)
                     .Add(labels, kTtftBuckets);
  impl_->itl = &BuildHistogram()
                    .Name("vllm:inter_token_latency_seconds")
                    .Help("Histogram of inter-token latency in seconds.")
                    .Register(r)
                    .Add(labels, kItlBuckets);
  impl_->e2e = &BuildHistogram()
                    .Name("vllm:e2e_request_latency_seconds")
                    .Help("Histogram of end to end request latency in seconds.")
                    .Register(r)
                    .Add(labels, kE2eBuckets);
  auto& success = BuildCounter()
                      .Name("vllm:request_success_total")
                      .Help("Count of finished requests, by finish reason.")
                      .Register(r);
  for (engine::FinishReason reason : {engine::FinishReason::kStop, engine::FinishReason::kLength,
                                      engine::FinishReason::kAbort, engine::FinishReason::kError}) {
    impl_->finished[static_cast<size_t>(reason)] =
        &success.Add({{"model_name", model_name}, {"finished_reason", to_string(reason)}});
  }
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::observe_time_to_first_token(double seconds) { impl_->ttft->Observe(seconds); }
void ServerMetrics::observe_inter_token_latency(double seconds) { impl_->itl->Observe(seconds); }
void ServerMetrics::observe_e2e_request_latency(double seconds) { impl_->e2e->Observe(seconds); }

void ServerMetrics::count_finished(engine::FinishReason reason) {
  impl_->finished[static_cast<size_t>(reason)]->Increment();
}

std::string ServerMetrics::scrape(const engine::EngineStats* stats) {
  std::lock_guard<std::mutex> lock(impl_->scrape_mutex);
  if (stats != nullptr) {
    impl_->running->Set(stats->num_running);
    impl_->waiting->Set(stats->num_waiting);
    impl_->kv_usage->Set(stats->kv_cache_usage);
    advance_to(*impl_->prompt_tokens, static_cast<double>(stats->prompt_tokens));
    advance_to(*impl_->generation_tokens, static_cast<double>(stats->generation_tokens));
    advance_to(*impl_->preemptions, static_cast<double>(stats->num_preemptions));
    advance_to(*impl_->prefix_queries, static_cast<double>(stats->prefix_cache_queries));
    advance_to(*impl_->prefix_hits, static_cast<double>(stats->prefix_cache_hits));
    advance_to(*impl_->device_sampled, static_cast<double>(stats->device_sampled_tokens));
    advance_to(*impl_->graph_steps, static_cast<double>(stats->graph_steps));
    advance_to(*impl_->graph_captures, static_cast<double>(stats->graph_captures));
  }
  prometheus::TextSerializer serializer;
  return serializer.Serialize(impl_->registry->Collect());
}

}  // namespace tessera::server

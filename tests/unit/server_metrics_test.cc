// ServerMetrics: the exposition carries vLLM's metric names with the model_name label, engine
// totals become monotonic counters, and latency observations land in the histograms.
#include <gtest/gtest.h>

#include <string>

#include "tessera/server/metrics.h"

namespace tessera::server {
namespace {

bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST(ServerMetrics, ExposesVllmNamesWithModelLabel) {
  ServerMetrics metrics("smol");
  const std::string text = metrics.scrape(nullptr);
  for (const char* name :
       {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_bucket", "vllm:inter_token_latency_seconds_count",
        "vllm:e2e_request_latency_seconds_sum", "vllm:num_preemptions_total",
        "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total",
        "vllm:request_success_total"}) {
    EXPECT_TRUE(contains(text, name)) << name << "\n" << text;
  }
  EXPECT_TRUE(contains(text, "model_name=\"smol\""));
  EXPECT_TRUE(contains(text, "finished_reason=\"stop\""));
  EXPECT_TRUE(contains(text, "finished_reason=\"abort\""));
}

TEST(ServerMetrics, EngineTotalsAndObservations) {
  ServerMetrics metrics("m");
  engine::EngineStats stats;
  stats.num_running = 3;
  stats.num_waiting = 2;
  stats.kv_cache_usage = 0.25;
  stats.prompt_tokens = 100;
  stats.generation_tokens = 40;
  stats.device_sampled_tokens = 37;
  stats.graph_steps = 29;
  stats.graph_captures = 4;
  std::string text = metrics.scrape(&stats);
  EXPECT_TRUE(contains(text, "vllm:num_requests_running{model_name=\"m\"} 3")) << text;
  EXPECT_TRUE(contains(text, "vllm:num_requests_waiting{model_name=\"m\"} 2"));
  EXPECT_TRUE(contains(text, "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.25"));
  EXPECT_TRUE(contains(text, "vllm:prompt_tokens_total{model_name=\"m\"} 100"));
  EXPECT_TRUE(contains(text, "tessera:device_sampled_tokens_total{model_name=\"m\"} 37"));
  EXPECT_TRUE(contains(text, "tessera:graph_steps_total{model_name=\"m\"} 29"));
  EXPECT_TRUE(contains(text, "tessera:graph_captures_total{model_name=\"m\"} 4"));

  stats.prompt_tokens = 150;
  stats.num_running = 0;
  metrics.observe_time_to_first_token(0.05);
  metrics.observe_inter_token_latency(0.02);
  metrics.observe_e2e_request_latency(1.2);
  metrics.count_finished(engine::FinishReason::kLength);
  text = metrics.scrape(&stats);
  EXPECT_TRUE(contains(text, "vllm:prompt_tokens_total{model_name=\"m\"} 150")) << text;
  EXPECT_TRUE(contains(text, "vllm:num_requests_running{model_name=\"m\"} 0"));
  EXPECT_TRUE(contains(text, "vllm:time_to_first_token_seconds_count{model_name=\"m\"} 1"));
  EXPECT_TRUE(contains(text, "vllm:e2e_request_latency_seconds_count{model_name=\"m\"} 1"));
  EXPECT_TRUE(
      contains(text, "vllm:request_success_total{finished_reason=\"length\",model_name=\"m\"} 1"))
      << text;
}

}  // namespace
}  // namespace tessera::server

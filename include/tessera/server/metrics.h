// ServerMetrics: the Prometheus registry behind GET /metrics, with vLLM's metric names and a
// model_name label. Engine gauges and counters are copied from Engine::stats() at scrape time;
// latencies (TTFT, inter-token, end-to-end) are observed by the server as outputs go out.
// Invariant: every method is thread-safe (I/O threads observe while a scrape serialises).
#pragma once

#include <memory>
#include <string>

#include "tessera/engine/engine.h"

namespace tessera::server {

class ServerMetrics {
 public:
  explicit ServerMetrics(const std::string& model_name);
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  void observe_time_to_first_token(double seconds);
  void observe_inter_token_latency(double seconds);
  void observe_e2e_request_latency(double seconds);
  // One engine request ended ("stop" | "length" | "abort" | "error").
  void count_finished(engine::FinishReason reason);

  // Text exposition format 0.0.4. `stats` null (model still loading): engine gauges read 0.
  std::string scrape(const engine::EngineStats* stats);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::server

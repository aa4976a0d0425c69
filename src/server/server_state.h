// ServerState: what every connection of one Server shares — config, auth, metrics, the
// io_context and worker pool, the engine once loaded, lifecycle flags and the live sessions.
// Invariant: `model` is written before `engine` is published (release), so any thread that
// sees a non-null engine (acquire) also sees the served model. Member order matters: the
// worker pool and the io_context are destroyed first, while what their handlers touch lives.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "tessera/api/openai.h"
#include "tessera/engine/engine.h"
#include "tessera/server/auth.h"
#include "tessera/server/config.h"
#include "tessera/server/metrics.h"

namespace tessera::server {

class Session;

struct ServerState {
  ServerState(const ServerConfig& cfg, const std::string& model_name)
      : config(cfg), auth(cfg.api_keys), metrics(model_name), workers(cfg.worker_threads) {}

  engine::Engine* loaded_engine() const { return engine.load(std::memory_order_acquire); }
  // Claims one generation slot; false (nothing claimed) at max_concurrent_requests.
  bool try_claim_slot();
  void release_slot() { in_flight.fetch_sub(1, std::memory_order_acq_rel); }

  void register_session(Session* s, std::weak_ptr<Session> weak);
  void unregister_session(Session* s);
  size_t session_count();
  // Closes every open connection (each on its own strand).
  void close_all_sessions();

  ServerConfig config;
  ApiKeyAuth auth;
  ServerMetrics metrics;
  api::ServedModel model;                     // valid once engine is non-null
  std::atomic<engine::Engine*> engine{nullptr};
  std::atomic<bool> draining{false};
  std::atomic<int32_t> in_flight{0};          // generation requests holding a slot
  std::atomic<uint64_t> next_response_id{1};

  std::mutex sessions_mutex;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;

  boost::asio::io_context ioc;
  boost::asio::thread_pool workers;           // prepare_*, tokenize, detokenize
};

namespace http = boost::beast::http;
using StringResponse = http::response<http::string_body>;

// An OpenAI-style error response (JSON body, keep-alive as asked).
StringResponse make_error_response(const api::ApiError& error, unsigned version, bool keep_alive);
StringResponse make_json_response(http::status status, std::string body, unsigned version,
                                  bool keep_alive);
api::ApiError make_api_error(int http_status, std::string message, std::string type,
                             std::string code = "");

// "cmpl-" / "chatcmpl-" + 24 hex digits, unique within the process.
std::string make_response_id(ServerState& state, const char* prefix);

}  // namespace tessera::server

// GenerationCall: one POST /v1/completions or /v1/chat/completions from body to last byte.
// Prepares the request on the worker pool, submits its engine requests, turns their outputs
// (posted from the engine thread onto the connection's strand) into a JSON body or an SSE
// stream with keep-alive comments, observes latency metrics, and aborts its engine requests
// when the client goes away. Invariant: it holds one concurrency slot from construction to
// destruction, and finishes the HTTP exchange only after every submitted engine request has
// delivered its final output.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "src/server/server_state.h"
#include "tessera/server/router.h"

namespace tessera::server {

class Session;

class GenerationCall : public std::enable_shared_from_this<GenerationCall> {
 public:
  GenerationCall(std::shared_ptr<Session> session, ServerState& state, Route route,
                 http::request<http::string_body> request, engine::Engine* engine);
  ~GenerationCall();

  void start();
  // The socket read EOF or failed: abort every unfinished engine request now.
  void on_client_gone();

 private:
  using Clock = std::chrono::steady_clock;

  void on_prepared(api::Prepared prepared);
  void submit_all();
  void on_output(size_t index, engine::RequestOutput output);
  void observe_latencies(size_t index, const engine::RequestOutput& output, Clock::time_point now);
  void on_all_finished();
  void respond_error(const api::ApiError& error);
  void abort_unfinished();
  // Streaming.
  void enqueue(std::string data);
  void pump();
  void arm_keepalive();

  std::shared_ptr<Session> session_;
  ServerState& state_;
  Route route_;
  std::string body_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  engine::Engine* engine_;
  Clock::time_point arrival_;

  std::optional<api::PreparedRequest> prepared_;
  std::optional<api::ResponseAssembler> assembler_;
  std::vector<engine::RequestId> ids_;        // [num submitted]
  std::vector<bool> finished_;                // [num submitted]
  std::vector<bool> first_token_seen_;        // [num submitted]
  std::vector<Clock::time_point> last_token_at_;  // [num submitted]
  size_t num_unfinished_ = 0;
  std::optional<api::ApiError> submit_error_;  // a later submit failed: answer this at the end
  bool client_gone_ = false;
  bool completed_ = false;

  // Streaming state (SSE over chunked transfer encoding).
  bool streaming_ = false;
  std::optional<http::response<http::empty_body>> header_;
  std::optional<http::response_serializer<http::empty_body>> header_serializer_;
  bool header_sent_ = false;
  bool writing_ = false;
  bool final_queued_ = false;  // [DONE] is in pending_; the last chunk follows
  bool last_chunk_sent_ = false;
  std::string pending_;
  std::string inflight_;
  Clock::time_point last_write_at_;
  std::optional<boost::asio::steady_timer> keepalive_timer_;
};

}  // namespace tessera::server

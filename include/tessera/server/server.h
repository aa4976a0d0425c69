// Server: the OpenAI-compatible HTTP front end (Boost.Beast, HTTP/1.1 keep-alive) over one
// Engine. It listens before the model is loaded (/health answers, /ready is 503 until
// attach()), runs request preparation on a worker pool off the I/O threads, streams SSE, and
// drains on shutdown. Invariant: nothing a client sends throws across a Beast callback or
// crashes the process; every engine request a client started ends with a final output that is
// delivered to it (or the client is gone, and the request was aborted).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "tessera/api/openai.h"
#include "tessera/core/status.h"
#include "tessera/engine/engine.h"
#include "tessera/server/config.h"

namespace tessera::server {

class Server {
 public:
  // Binds and starts the I/O and worker threads. `model_name` labels the metrics (it should
  // equal the ServedModel's name given to attach()).
  static Result<std::unique_ptr<Server>> start(const ServerConfig& config,
                                               const std::string& model_name);
  virtual ~Server() = default;  // stops everything still running (no drain)

  virtual uint16_t bound_port() const = 0;

  // The model is loaded: generation routes open and /ready answers 200. `engine` and the
  // model's pointers must outlive the server (or the server must be stopped first).
  virtual void attach(engine::Engine* engine, api::ServedModel model) = 0;

  // Blocks until SIGTERM or SIGINT arrives (installed by start()) or request_shutdown().
  virtual void wait_for_shutdown_request() = 0;
  virtual void request_shutdown() = 0;
  virtual bool shutdown_requested() const = 0;

  // Graceful stop: closes the listener, /ready -> 503, new generation requests -> 503, lets
  // the engine finish running requests until now + shutdown_timeout (the rest end with
  // finish_reason "abort", delivered to their clients), flushes responses, then closes every
  // connection and joins the threads.
  virtual void drain_and_stop() = 0;
};

}  // namespace tessera::server

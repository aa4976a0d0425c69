// Server: binds the listener, runs the I/O threads and the worker pool, installs SIGTERM /
// SIGINT, publishes the engine once loaded, and drains on shutdown (see server.h).
// Invariant: the engine is drained (nothing in flight, so no callback can fire) before the
// io_context stops; handlers are never left with a dangling engine or state.
#include "tessera/server/server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <condition_variable>
#include <random>
#include <thread>

#include "src/server/session.h"
#include "tessera/core/logging.h"

namespace tessera::server {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// ---- ServerState helpers -------------------------------------------------------------------

bool ServerState::try_claim_slot() {
  int32_t current = in_flight.load(std::memory_order_acquire);
  while (current < config.max_concurrent_requests) {
    if (in_flight.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel)) {
      return true;
    }
  }
  return false;
}

void ServerState::register_session(Session* s, std::weak_ptr<Session> weak) {
  std::lock_guard<std::mutex> lock(sessions_mutex);
  sessions.emplace(s, std::move(weak));
}

void ServerState::unregister_session(Session* s) {
  std::lock_guard<std::mutex> lock(sessions_mutex);
  sessions.erase(s);
}

size_t ServerState::session_count() {
  std::lock_guard<std::mutex> lock(sessions_mutex);
  return sessions.size();
}

void ServerState::close_all_sessions() {
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    for (auto& [ptr, weak] : sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->close();
}

api::ApiError make_api_error(int http_status, std::string message, std::string type,
                             std::string code) {
  api::ApiError e;
  e.http_status = http_status;
  e.message = std::move(message);
  e.type = std::move(type);
  e.code = std::move(code);
  return e;
}

StringResponse make_json_response(http::status status, std::string body, unsigned version,
                                  bool keep_alive) {
  StringResponse res{status, version};
  res.set(http::field::server, "tessera");
  res.set(http::field::content_type, "application/json");
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

StringResponse make_error_response(const api::ApiError& error, unsigned version,
                                   bool keep_alive) {
  return make_json_response(static_cast<http::status>(error.http_status), error.to_json(),
                            version, keep_alive);
}

std::string make_response_id(ServerState& state, const char* prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t counter = state.next_response_id.fetch_add(1, std::memory_order_relaxed);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s-%016llx%08llx", prefix,
                static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(counter & 0xffffffffull));
  return buf;
}

// ---- Listener and Server -------------------------------------------------------------------

namespace {

class ServerImpl final : public Server {
 public:
  ServerImpl(const ServerConfig& config, const std::string& model_name)
      : state_(config, model_name),
        acceptor_(asio::make_strand(state_.ioc)),
        signals_(state_.ioc, SIGINT, SIGTERM) {}

  ~ServerImpl() override {
    if (!stopped_) {
      if (engine::Engine* e = state_.loaded_engine()) e->drain(std::chrono::steady_clock::now());
      stop_threads();
    }
  }

  Status bind() {
    boost::system::error_code ec;
    const asio::ip::address address = asio::ip::make_address(state_.config.host, ec);
    if (ec) return invalid_argument("--host '{}' is not an IP address", state_.config.host);
    const tcp::endpoint endpoint(address, state_.config.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return make_error(StatusCode::kUnavailable, "cannot listen on {}:{}: {}",
                        state_.config.host, state_.config.port, ec.message());
    }
    bound_port_ = acceptor_.local_endpoint().port();
    return Status::ok_status();
  }

  void run() {
    signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
      if (ec) return;
      TESSERA_LOG_INFO("received signal {}; draining", signal);
      request_shutdown();
    });
    do_accept();
    for (int i = 0; i < state_.config.io_threads; ++i) {
      io_threads_.emplace_back([this] { state_.ioc.run(); });
    }
  }

  uint16_t bound_port() const override { return bound_port_; }

  void attach(engine::Engine* engine, api::ServedModel model) override {
    state_.model = std::move(model);
    state_.engine.store(engine, std::memory_order_release);
  }

  void wait_for_shutdown_request() override {
    std::unique_lock<std::mutex> lock(shutdown_mutex_);
    shutdown_cv_.wait(lock, [this] { return shutdown_requested_; });
  }

  void request_shutdown() override {
    {
      std::lock_guard<std::mutex> lock(shutdown_mutex_);
      shutdown_requested_ = true;
    }
    shutdown_cv_.notify_all();
  }

  bool shutdown_requested() const override {
    std::lock_guard<std::mutex> lock(shutdown_mutex_);
    return shutdown_requested_;
  }

  void drain_and_stop() override {
    if (stopped_) return;
    state_.draining.store(true, std::memory_order_release);
    asio::post(acceptor_.get_executor(), [this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
      accept_backoff_.cancel();
    });
    const auto deadline = std::chrono::steady_clock::now() + state_.config.shutdown_timeout;
    if (engine::Engine* engine = state_.loaded_engine()) {
      TESSERA_LOG_INFO("draining: {} request(s) in flight, up to {} ms",
                       state_.in_flight.load(), state_.config.shutdown_timeout.count());
      engine->drain(deadline);
    }
    // Every engine request has delivered its final output; let the connections flush it.
    const auto flush_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (state_.in_flight.load(std::memory_order_acquire) > 0 &&
           std::chrono::steady_clock::now() < flush_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    state_.close_all_sessions();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stop_threads();
    TESSERA_LOG_INFO("server stopped");
  }

 private:
  // Accept errors (EMFILE, ENFILE, ENOBUFS: the process is out of descriptors) would fail
  // again at once, so the next accept waits a little instead of spinning. Connections beyond
  // max_connections are closed as soon as they are accepted (a flood of idle connections
  // cannot exhaust descriptors; each open one is closed after idle_timeout anyway).
  void do_accept() {
    acceptor_.async_accept(asio::make_strand(state_.ioc),
                           [this](boost::system::error_code ec, tcp::socket socket) {
                             if (ec) {
                               if (ec == asio::error::operation_aborted || !acceptor_.is_open()) {
                                 return;
                               }
                               if (accept_errors_++ % 100 == 0) {
                                 TESSERA_LOG_WARN("accept failed: {} (retrying in 100 ms)",
                                                  ec.message());
                               }
                               accept_backoff_.expires_after(std::chrono::milliseconds(100));
                               accept_backoff_.async_wait([this](boost::system::error_code e2) {
                                 if (!e2 && acceptor_.is_open()) do_accept();
                               });
                               return;
                             }
                             boost::system::error_code ignored;
                             if (state_.session_count() >=
                                 static_cast<size_t>(state_.config.max_connections)) {
                               if (refused_++ % 1000 == 0) {
                                 TESSERA_LOG_WARN("{} open connections (--max-connections); "
                                                  "closing new ones",
                                                  state_.config.max_connections);
                               }
                               socket.close(ignored);
                             } else {
                               socket.set_option(tcp::no_delay(true), ignored);
                               std::make_shared<Session>(std::move(socket), state_)->start();
                             }
                             if (acceptor_.is_open()) do_accept();
                           });
  }

  void stop_threads() {
    stopped_ = true;
    boost::system::error_code ignored;
    signals_.cancel(ignored);
    state_.workers.join();
    state_.ioc.stop();
    for (std::thread& t : io_threads_) {
      if (t.joinable()) t.join();
    }
  }

  ServerState state_;
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  std::vector<std::thread> io_threads_;
  asio::steady_timer accept_backoff_{acceptor_.get_executor()};
  uint64_t accept_errors_ = 0;  // both on the acceptor's strand
  uint64_t refused_ = 0;
  uint16_t bound_port_ = 0;
  bool stopped_ = false;
  mutable std::mutex shutdown_mutex_;
  std::condition_variable shutdown_cv_;
  bool shutdown_requested_ = false;
};

}  // namespace

Result<std::unique_ptr<Server>> Server::start(const ServerConfig& config,
                                              const std::string& model_name) {
  TESSERA_RETURN_IF_ERROR(validate(config));
  auto server = std::make_unique<ServerImpl>(config, model_name);
  TESSERA_RETURN_IF_ERROR(server->bind());
  server->run();
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace tessera::server

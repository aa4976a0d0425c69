// Session: read -> route -> respond on one connection's strand; small routes answered here,
// generation routes handed to GenerationCall (src/server/generation.cc).
// Invariant: a handler never lets an exception escape into Beast; any failure closes only this
// connection.
#include "src/server/session.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <string_view>

#include "src/server/generation.h"
#include "tessera/core/logging.h"

namespace tessera::server {
namespace beast = boost::beast;
namespace asio = boost::asio;

namespace {

constexpr int64_t kMaxDiscardBytes = 64ll << 20;  // drained after a 413 before closing
constexpr size_t kMaxWatchBuffer = 64 * 1024;     // pipelined bytes kept while generating

StringResponse make_text_response(http::status status, std::string body, const char* type,
                                  unsigned version, bool keep_alive) {
  StringResponse res{status, version};
  res.set(http::field::server, "tessera");
  res.set(http::field::content_type, type);
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

}  // namespace

Session::Session(asio::ip::tcp::socket socket, ServerState& state)
    : stream_(std::move(socket)), state_(state) {}

Session::~Session() { state_.unregister_session(this); }

void Session::start() {
  state_.register_session(this, weak_from_this());
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->do_read_header(); });
}

void Session::close() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] { self->do_close(); });
}

void Session::do_close() {
  if (closed_) return;
  closed_ = true;
  beast::error_code ec;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  stream_.socket().close(ec);
}

// Timeouts: an idle connection gets idle_timeout for the first byte of its next request; from
// that byte on, one read_timeout deadline covers the request line, headers and body together,
// so a client dribbling headers (slowloris) or a body that never completes is cut off.
void Session::do_read_header() {
  if (closed_) return;
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(state_.config.max_header_bytes));
  parser_->body_limit(static_cast<uint64_t>(state_.config.max_body_bytes));
  if (buffer_.size() > 0) return start_request_read();  // pipelined bytes already here
  stream_.expires_after(state_.config.idle_timeout);
  stream_.async_read_some(buffer_.prepare(4096),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            if (ec) return self->on_read_error(ec);
                            self->buffer_.commit(n);
                            self->start_request_read();
                          });
}

void Session::start_request_read() {
  stream_.expires_after(state_.config.read_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            self->on_read_header(ec);
                          });
}

void Session::on_read_header(beast::error_code ec) {
  if (ec) return on_read_error(ec);
  const auto& header = parser_->get();
  const boost::optional<uint64_t> length = parser_->content_length();
  if (length && *length > static_cast<uint64_t>(state_.config.max_body_bytes)) {
    api::ApiError error = make_api_error(
        413,
        "Request body of " + std::to_string(*length) + " bytes exceeds the limit of " +
            std::to_string(state_.config.max_body_bytes) + " bytes.",
        "invalid_request_error", "request_too_large");
    return reject_and_close(make_error_response(error, header.version(), false));
  }
  // curl and others send `Expect: 100-continue` for larger bodies and wait (curl: 1 s) for
  // the interim answer before sending the body. The read deadline keeps running meanwhile.
  if (header.version() >= 11 && !parser_->is_done() &&
      beast::iequals(header[http::field::expect], "100-continue")) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    return asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                             [self = shared_from_this()](beast::error_code ec2, size_t) {
                               if (ec2) return self->do_close();
                               self->read_body();
                             });
  }
  read_body();
}

void Session::read_body() {
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) {
                     self->on_read_body(ec);
                   });
}

void Session::on_read_body(beast::error_code ec) {
  if (ec) return on_read_error(ec);
  request_ = parser_->release();
  parser_.reset();
  try {
    handle_request();
  } catch (const std::exception& e) {
    TESSERA_LOG_ERROR("request handler failed: {}", e.what());
    reject_and_close(make_error_response(
        make_api_error(500, "internal server error", "server_error"), request_.version(), false));
  }
}

void Session::on_read_error(beast::error_code ec) {
  if (ec == http::error::end_of_stream || ec == asio::error::eof ||
      ec == beast::error::timeout || ec == asio::error::operation_aborted ||
      ec == asio::error::connection_reset) {
    return do_close();
  }
  const unsigned version = parser_ ? parser_->get().version() : 11;
  if (ec == http::error::body_limit) {
    return reject_and_close(make_error_response(
        make_api_error(413, "Request body exceeds the limit of " +
                                std::to_string(state_.config.max_body_bytes) + " bytes.",
                       "invalid_request_error", "request_too_large"),
        version, false));
  }
  if (ec == http::error::header_limit) {
    StringResponse res = make_error_response(
        make_api_error(431, "Request headers too large.", "invalid_request_error"), version,
        false);
    res.result(http::status::request_header_fields_too_large);
    return reject_and_close(std::move(res));
  }
  if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
    return reject_and_close(make_error_response(
        make_api_error(400, "Malformed HTTP request: " + ec.message(), "invalid_request_error"),
        version, false));
  }
  do_close();
}

void Session::reject_and_close(StringResponse response) {
  auto res = std::make_shared<StringResponse>(std::move(response));
  res->keep_alive(false);
  stream_.expires_after(state_.config.read_timeout);
  http::async_write(stream_, *res,
                    [self = shared_from_this(), res](beast::error_code ec, size_t) {
                      if (ec) return self->do_close();
                      self->discard_then_close();
                    });
}

// NOTE: closing a socket with unread request bytes makes the kernel send RST, and a client
// still writing its (rejected) body then sees "connection reset" instead of our 413. So we
// half-close and read what is left (bounded) before closing.
void Session::discard_then_close() {
  beast::error_code ignored;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  discard_buffer_.resize(64 * 1024);
  stream_.expires_after(std::chrono::seconds(5));
  discard_more();
}

void Session::discard_more() {
  stream_.async_read_some(
      asio::buffer(discard_buffer_),
      [self = shared_from_this()](beast::error_code ec, size_t n) {
        self->discarded_bytes_ += static_cast<int64_t>(n);
        if (ec || self->discarded_bytes_ > kMaxDiscardBytes) return self->do_close();
        self->discard_more();
      });
}

void Session::handle_request() {
  const RouteMatch match = match_route(std::string_view(request_.method_string().data(),
                                                        request_.method_string().size()),
                                       std::string_view(request_.target().data(),
                                                        request_.target().size()));
  const unsigned version = request_.version();
  const bool keep_alive = request_.keep_alive();
  if (match.status == RouteStatus::kNotFound) {
    return send_response(make_error_response(
        make_api_error(404,
                       "Not Found: " + std::string(request_.target().data(),
                                                   request_.target().size()),
                       "not_found_error"),
        version, keep_alive));
  }
  if (match.status == RouteStatus::kMethodNotAllowed) {
    StringResponse res = make_error_response(
        make_api_error(405,
                       "Method " + std::string(request_.method_string()) + " not allowed on " +
                           route_path(match.route) + "; use " +
                           std::string(match.allowed_method) + ".",
                       "invalid_request_error"),
        version, keep_alive);
    res.set(http::field::allow, std::string(match.allowed_method));
    return send_response(std::move(res));
  }
  handle_routed(match);
}

void Session::handle_routed(const RouteMatch& match) {
  const unsigned version = request_.version();
  const bool keep_alive = request_.keep_alive();
  const Route route = match.route;
  if (route_requires_auth(route) && state_.auth.enabled()) {
    const auto it = request_.find(http::field::authorization);
    const std::string_view header =
        it == request_.end() ? std::string_view{}
                             : std::string_view(it->value().data(), it->value().size());
    if (!state_.auth.check(header)) {
      StringResponse res = make_error_response(
          make_api_error(401, "Incorrect API key provided.", "authentication_error",
                         "invalid_api_key"),
          version, keep_alive);
      res.set(http::field::www_authenticate, "Bearer");
      return send_response(std::move(res));
    }
  }
  engine::Engine* engine = state_.loaded_engine();
  const bool draining = state_.draining.load(std::memory_order_acquire);
  switch (route) {
    case Route::kHealth:
      return send_response(
          make_text_response(http::status::ok, "", "text/plain", version, keep_alive));
    case Route::kReady: {
      const char* why = draining ? "draining" : (engine == nullptr ? "loading" : nullptr);
      if (why != nullptr) {
        return send_response(make_json_response(http::status::service_unavailable,
                                                std::string("{\"status\":\"") + why + "\"}",
                                                version, keep_alive));
      }
      return send_response(
          make_json_response(http::status::ok, "{\"status\":\"ready\"}", version, keep_alive));
    }
    case Route::kMetrics: {
      engine::EngineStats stats;
      if (engine != nullptr) stats = engine->stats();
      std::string body = state_.metrics.scrape(engine != nullptr ? &stats : nullptr);
      return send_response(make_text_response(http::status::ok, std::move(body),
                                              "text/plain; version=0.0.4; charset=utf-8",
                                              version, keep_alive));
    }
    case Route::kCompletions:
    case Route::kChatCompletions:
    case Route::kModels:
    case Route::kTokenize:
    case Route::kDetokenize:
      break;
  }
  if (engine == nullptr) {
    StringResponse res = make_error_response(
        make_api_error(503, "The model is still loading; retry shortly.", "server_error",
                       "model_loading"),
        version, keep_alive);
    res.set(http::field::retry_after, "1");
    return send_response(std::move(res));
  }
  if (route == Route::kModels) {
    return send_response(make_json_response(http::status::ok, api::models_response(state_.model),
                                            version, keep_alive));
  }
  if (route == Route::kTokenize || route == Route::kDetokenize) {
    return run_on_worker_and_respond(route);
  }
  // Generation routes.
  if (draining) {
    return send_response(make_error_response(
        make_api_error(503, "The server is shutting down; retry on another replica.",
                       "server_error", "server_draining"),
        version, keep_alive));
  }
  if (!state_.try_claim_slot()) {
    StringResponse res = make_error_response(
        make_api_error(429,
                       "Too many concurrent requests (limit " +
                           std::to_string(state_.config.max_concurrent_requests) +
                           "); retry later.",
                       "rate_limit_error", "rate_limit_exceeded"),
        version, keep_alive);
    res.set(http::field::retry_after, std::to_string(state_.config.retry_after_s));
    return send_response(std::move(res));
  }
  call_ = std::make_shared<GenerationCall>(shared_from_this(), state_, route, std::move(request_),
                                           engine);
  call_->start();
}

void Session::run_on_worker_and_respond(Route route) {
  auto body = std::make_shared<std::string>(std::move(request_.body()));
  const unsigned version = request_.version();
  const bool keep_alive = request_.keep_alive();
  asio::post(state_.workers, [self = shared_from_this(), body, route, version, keep_alive] {
    StringResponse res;
    try {
      std::variant<std::string, api::ApiError> out =
          route == Route::kTokenize ? api::tokenize(*body, self->state_.model)
                                    : api::detokenize(*body, self->state_.model);
      if (auto* error = std::get_if<api::ApiError>(&out)) {
        res = make_error_response(*error, version, keep_alive);
      } else {
        res = make_json_response(http::status::ok, std::move(std::get<std::string>(out)), version,
                                 keep_alive);
      }
    } catch (const std::exception& e) {
      res = make_error_response(make_api_error(500, e.what(), "server_error"), version,
                                keep_alive);
    }
    asio::post(self->stream_.get_executor(), [self, res = std::move(res)]() mutable {
      self->send_response(std::move(res));
    });
  });
}

void Session::send_response(StringResponse response) {
  if (closed_) return;
  auto res = std::make_shared<StringResponse>(std::move(response));
  if (request_.method() == http::verb::head) res->body().clear();
  const bool keep_alive = res->keep_alive() && !state_.draining.load(std::memory_order_acquire);
  res->keep_alive(keep_alive);
  stream_.expires_after(state_.config.read_timeout);
  http::async_write(stream_, *res,
                    [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
                      if (ec) return self->do_close();
                      self->finish_exchange(keep_alive);
                    });
}

void Session::finish_exchange(bool keep_alive) {
  call_.reset();
  if (closed_ || client_gone_ || !keep_alive) return do_close();
  if (watching_) {
    // The pending disconnect-watch read must end before the next request is read.
    next_read_after_watch_ = true;
    beast::error_code ignored;
    stream_.socket().cancel(ignored);
    return;
  }
  do_read_header();
}

void Session::watch_for_disconnect() {
  if (watching_ || closed_) return;
  if (buffer_.size() >= kMaxWatchBuffer) return;  // a pipelining client: stop reading ahead
  watching_ = true;
  stream_.expires_never();
  stream_.async_read_some(buffer_.prepare(4096),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            self->on_watch(ec, n);
                          });
}

void Session::on_watch(beast::error_code ec, size_t bytes) {
  watching_ = false;
  if (!ec) buffer_.commit(bytes);
  if (next_read_after_watch_) {
    next_read_after_watch_ = false;
    if (ec && ec != asio::error::operation_aborted) return do_close();
    return do_read_header();
  }
  if (ec) {
    if (ec == asio::error::operation_aborted) return;  // close() or shutdown
    client_gone_ = true;
    if (call_) call_->on_client_gone();
    return;
  }
  if (call_) watch_for_disconnect();
}

}  // namespace tessera::server

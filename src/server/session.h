// Session: one HTTP/1.1 connection (keep-alive) on its own strand. Reads a request (header and
// body limits, idle and read timeouts), routes it, answers small routes itself and hands
// generation routes to a GenerationCall; while a generation runs it keeps a read pending so a
// client that goes away is noticed at once.
// Invariant: every handler runs on the session's strand and catches everything it could throw;
// at most one read and one write are pending at any time.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <optional>
#include <string>

#include "src/server/server_state.h"
#include "tessera/server/router.h"

namespace tessera::server {

class GenerationCall;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(boost::asio::ip::tcp::socket socket, ServerState& state);
  ~Session();

  void start();
  // Posts a close onto the strand (used by shutdown).
  void close();

  // For GenerationCall (all on the strand).
  boost::beast::tcp_stream& stream() { return stream_; }
  auto executor() { return stream_.get_executor(); }
  bool client_gone() const { return client_gone_; }
  // Sends a whole response, then continues with the next request (or closes).
  void send_response(StringResponse response);
  // The current exchange's response has been written completely (streamed or not).
  void finish_exchange(bool keep_alive);
  // Starts watching the socket for EOF while a generation runs.
  void watch_for_disconnect();

 private:
  void do_read_header();
  void start_request_read();
  void on_read_header(boost::beast::error_code ec);
  void read_body();
  void on_read_body(boost::beast::error_code ec);
  void on_read_error(boost::beast::error_code ec);
  void on_watch(boost::beast::error_code ec, size_t bytes);
  void handle_request();
  void handle_routed(const RouteMatch& match);
  void run_on_worker_and_respond(Route route);
  void reject_and_close(StringResponse response);
  void discard_then_close();
  void discard_more();
  void do_close();

  boost::beast::tcp_stream stream_;
  ServerState& state_;
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  std::shared_ptr<GenerationCall> call_;
  std::string discard_buffer_;
  int64_t discarded_bytes_ = 0;
  bool watching_ = false;
  bool next_read_after_watch_ = false;
  bool client_gone_ = false;
  bool closed_ = false;
};

}  // namespace tessera::server

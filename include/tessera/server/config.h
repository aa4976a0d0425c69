// ServerConfig: everything `tessera serve` sets on the HTTP side — address, threads, request
// limits and timeouts, API keys, drain budget. Invariant: validate() accepts exactly the
// configs the server can run with; the server never re-checks them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/core/status.h"

namespace tessera::server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;                    // 0: any free port (bound_port() says which)
  int32_t io_threads = 2;                  // Beast I/O threads (never run templating)
  int32_t worker_threads = 2;              // prepare_* (templating + tokenisation) pool
  std::vector<std::string> api_keys;       // empty: no authentication
  int64_t max_header_bytes = 16 * 1024;    // 431 beyond (request line + headers)
  int64_t max_body_bytes = 8 * 1024 * 1024;  // 413 beyond
  int32_t max_concurrent_requests = 256;   // generation requests in flight; 429 beyond
  int32_t max_connections = 4096;          // open connections; newer ones closed at once
  int32_t retry_after_s = 1;               // Retry-After on 429
  // From a request's first byte to its last (headers + body, one deadline: no slowloris).
  std::chrono::milliseconds read_timeout{30'000};
  std::chrono::milliseconds idle_timeout{120'000};    // connection with no request started
  std::chrono::milliseconds keepalive_interval{5'000};  // SSE ": keep-alive" comment period
  std::chrono::milliseconds shutdown_timeout{30'000};  // drain: running requests may finish
  std::string log_prefix = "tessera";
};

// invalid_argument naming the field and the allowed range when something is off.
Status validate(const ServerConfig& config);

// API keys from a file: one key per line, blank lines and lines starting with '#' ignored,
// surrounding whitespace trimmed. Fails when the file cannot be read or holds no key.
Result<std::vector<std::string>> read_api_key_file(const std::string& path);

}  // namespace tessera::server

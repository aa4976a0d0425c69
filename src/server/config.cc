// ServerConfig validation and the API-key file reader.
// Invariant: messages name the flag a user would change.
#include "tessera/server/config.h"

#include <fstream>
#include <sstream>

namespace tessera::server {

Status validate(const ServerConfig& config) {
  if (config.host.empty()) return invalid_argument("--host must not be empty");
  if (config.io_threads < 1 || config.io_threads > 256) {
    return invalid_argument("I/O threads must be in [1, 256], got {}", config.io_threads);
  }
  if (config.worker_threads < 1 || config.worker_threads > 256) {
    return invalid_argument("worker threads must be in [1, 256], got {}", config.worker_threads);
  }
  if (config.max_header_bytes < 1024) {
    return invalid_argument("max header size must be at least 1024 bytes, got {}",
                            config.max_header_bytes);
  }
  if (config.max_body_bytes < 1024) {
    return invalid_argument("max body size must be at least 1024 bytes, got {}",
                            config.max_body_bytes);
  }
  if (config.max_concurrent_requests < 1) {
    return invalid_argument("--max-concurrent-requests must be at least 1, got {}",
                            config.max_concurrent_requests);
  }
  if (config.max_connections < 1) {
    return invalid_argument("--max-connections must be at least 1, got {}",
                            config.max_connections);
  }
  if (config.retry_after_s < 0) return invalid_argument("Retry-After must not be negative");
  if (config.read_timeout.count() <= 0) {
    return invalid_argument("--http-read-timeout must be at least 0.001 s");
  }
  if (config.idle_timeout.count() <= 0) {
    return invalid_argument("--http-idle-timeout must be at least 0.001 s");
  }
  if (config.keepalive_interval.count() <= 0) {
    return invalid_argument("--sse-keepalive-interval must be at least 0.001 s");
  }
  if (config.shutdown_timeout.count() < 0) {
    return invalid_argument("--shutdown-timeout must not be negative");
  }
  for (const std::string& key : config.api_keys) {
    if (key.empty()) return invalid_argument("API keys must not be empty");
  }
  return Status::ok_status();
}

Result<std::vector<std::string>> read_api_key_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return invalid_argument("cannot read --api-key-file '{}'", path);
  std::vector<std::string> keys;
  std::string line;
  while (std::getline(in, line)) {
    const size_t b = line.find_first_not_of(" \t\r\n");
    if (b == std::string::npos || line[b] == '#') continue;
    const size_t e = line.find_last_not_of(" \t\r\n");
    keys.push_back(line.substr(b, e - b + 1));
  }
  if (keys.empty()) return invalid_argument("--api-key-file '{}' holds no key", path);
  return keys;
}

}  // namespace tessera::server

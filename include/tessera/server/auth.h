// API-key authentication: `Authorization: Bearer <key>` checked in constant time against the
// configured keys. Invariant: the time a check takes depends on the configured key lengths
// and the presented header's length only, never on where the first differing byte is.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::server {

// Equal contents, compared without early exit on the first difference.
bool constant_time_equal(std::string_view a, std::string_view b);

// The token of an "Authorization: Bearer <token>" header value (scheme case-insensitive,
// surrounding spaces ignored), or nullopt when the value is not a bearer credential.
std::optional<std::string_view> parse_bearer(std::string_view authorization);

class ApiKeyAuth {
 public:
  explicit ApiKeyAuth(std::vector<std::string> keys) : keys_(std::move(keys)) {}
  bool enabled() const { return !keys_.empty(); }
  // True when disabled, or when the header carries one of the keys. Every key is compared
  // (no early exit), so timing does not reveal which key matched.
  bool check(std::string_view authorization_header) const;

 private:
  std::vector<std::string> keys_;
};

}  // namespace tessera::server

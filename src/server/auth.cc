// Bearer-token parsing and constant-time key comparison for the API-key check.
// Invariant: no comparison exits early on content; only lengths shape the work done.
#include "tessera/server/auth.h"

#include <cctype>

namespace tessera::server {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool constant_time_equal(std::string_view a, std::string_view b) {
  // NOTE: walks max(len) bytes whatever the contents; the length difference is folded into the
  // accumulator instead of returning early. volatile keeps the compiler from short-cutting.
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = diff | static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

std::optional<std::string_view> parse_bearer(std::string_view authorization) {
  std::string_view v = trim(authorization);
  constexpr std::string_view kScheme = "bearer";
  if (v.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(v[i])) != kScheme[i]) return std::nullopt;
  }
  if (v[kScheme.size()] != ' ' && v[kScheme.size()] != '\t') return std::nullopt;
  std::string_view token = trim(v.substr(kScheme.size()));
  if (token.empty()) return std::nullopt;
  return token;
}

bool ApiKeyAuth::check(std::string_view authorization_header) const {
  if (keys_.empty()) return true;
  const std::optional<std::string_view> token = parse_bearer(authorization_header);
  const std::string_view presented = token ? *token : std::string_view{};
  bool ok = false;
  for (const std::string& key : keys_) {
    ok = constant_time_equal(presented, key) | ok;  // every key compared, no short circuit
  }
  return ok && token.has_value();
}

}  // namespace tessera::server

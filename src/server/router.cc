// Route table of the HTTP server: exact path matches, method checked second so a known path
// with the wrong method is a 405 (with Allow), an unknown one a 404.
// Invariant: the table is the single place that names the server's paths.
#include "tessera/server/router.h"

#include <array>

namespace tessera::server {
namespace {

struct RouteEntry {
  std::string_view path;
  std::string_view method;
  Route route;
};

constexpr std::array<RouteEntry, 8> kRoutes = {{
    {"/v1/completions", "POST", Route::kCompletions},
    {"/v1/chat/completions", "POST", Route::kChatCompletions},
    {"/v1/models", "GET", Route::kModels},
    {"/tokenize", "POST", Route::kTokenize},
    {"/detokenize", "POST", Route::kDetokenize},
    {"/health", "GET", Route::kHealth},
    {"/ready", "GET", Route::kReady},
    {"/metrics", "GET", Route::kMetrics},
}};

std::string_view strip_query(std::string_view target) {
  const size_t q = target.find_first_of("?#");
  if (q != std::string_view::npos) target = target.substr(0, q);
  // A trailing slash is tolerated ("/v1/models/"), the root itself is not a route.
  while (target.size() > 1 && target.back() == '/') target.remove_suffix(1);
  return target;
}

}  // namespace

RouteMatch match_route(std::string_view method, std::string_view target) {
  const std::string_view path = strip_query(target);
  for (const RouteEntry& entry : kRoutes) {
    if (entry.path != path) continue;
    RouteMatch match;
    match.route = entry.route;
    match.allowed_method = entry.method;
    const bool head_on_get = method == "HEAD" && entry.method == "GET";
    match.status = (method == entry.method || head_on_get) ? RouteStatus::kFound
                                                           : RouteStatus::kMethodNotAllowed;
    return match;
  }
  return RouteMatch{};
}

bool route_requires_auth(Route route) {
  switch (route) {
    case Route::kHealth:
    case Route::kReady:
    case Route::kMetrics:
      return false;
    case Route::kCompletions:
    case Route::kChatCompletions:
    case Route::kModels:
    case Route::kTokenize:
    case Route::kDetokenize:
      return true;
  }
  return true;
}

bool route_requires_model(Route route) {
  switch (route) {
    case Route::kHealth:
    case Route::kReady:
    case Route::kMetrics:
      return false;
    case Route::kCompletions:
    case Route::kChatCompletions:
    case Route::kModels:
    case Route::kTokenize:
    case Route::kDetokenize:
      return true;
  }
  return true;
}

bool route_generates(Route route) {
  return route == Route::kCompletions || route == Route::kChatCompletions;
}

const char* route_path(Route route) {
  for (const RouteEntry& entry : kRoutes) {
    if (entry.route == route) return entry.path.data();
  }
  return "";
}

}  // namespace tessera::server

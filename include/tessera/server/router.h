// Router: maps an HTTP method and request target to one of the server's routes, or says why
// none matches (404 unknown path, 405 known path with the wrong method). Pure: no sockets.
// Invariant: the query string never affects which path matches.
#pragma once

#include <string_view>

namespace tessera::server {

enum class Route {
  kCompletions,      // POST /v1/completions
  kChatCompletions,  // POST /v1/chat/completions
  kModels,           // GET  /v1/models
  kTokenize,         // POST /tokenize
  kDetokenize,       // POST /detokenize
  kHealth,           // GET  /health
  kReady,            // GET  /ready
  kMetrics,          // GET  /metrics
};

enum class RouteStatus { kFound, kNotFound, kMethodNotAllowed };

struct RouteMatch {
  RouteStatus status = RouteStatus::kNotFound;
  Route route = Route::kHealth;        // meaningful when status == kFound
  std::string_view allowed_method;     // for 405's Allow header
};

// `method` as sent ("GET", "POST", "HEAD"...); `target` the request target ("/v1/models?x=1").
// HEAD matches GET routes.
RouteMatch match_route(std::string_view method, std::string_view target);

// Whether a route needs the API key when keys are configured (health, ready, metrics don't).
bool route_requires_auth(Route route);
// Whether a route needs the model loaded (503 while loading otherwise).
bool route_requires_model(Route route);
// Whether the route submits engine requests (counted against max_concurrent_requests).
bool route_generates(Route route);

const char* route_path(Route route);

}  // namespace tessera::server

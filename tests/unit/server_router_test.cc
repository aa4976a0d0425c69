// Server pieces testable without sockets: the route table (404 / 405 / query strings), which
// routes need auth or the model, and the server config validation and API-key file reader.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "tessera/server/config.h"
#include "tessera/server/router.h"

namespace tessera::server {
namespace {

TEST(ServerRouter, MatchesEveryRouteWithItsMethod) {
  struct Case {
    const char* method;
    const char* target;
    Route route;
  };
  const Case cases[] = {
      {"POST", "/v1/completions", Route::kCompletions},
      {"POST", "/v1/chat/completions", Route::kChatCompletions},
      {"GET", "/v1/models", Route::kModels},
      {"POST", "/tokenize", Route::kTokenize},
      {"POST", "/detokenize", Route::kDetokenize},
      {"GET", "/health", Route::kHealth},
      {"GET", "/ready", Route::kReady},
      {"GET", "/metrics", Route::kMetrics},
  };
  for (const Case& c : cases) {
    const RouteMatch m = match_route(c.method, c.target);
    EXPECT_EQ(m.status, RouteStatus::kFound) << c.target;
    EXPECT_EQ(m.route, c.route) << c.target;
    EXPECT_STREQ(route_path(c.route), c.target);
  }
}

TEST(ServerRouter, QueryStringAndTrailingSlashDoNotChangeTheRoute) {
  EXPECT_EQ(match_route("GET", "/v1/models?limit=3").route, Route::kModels);
  EXPECT_EQ(match_route("GET", "/v1/models?limit=3").status, RouteStatus::kFound);
  EXPECT_EQ(match_route("GET", "/metrics#x").route, Route::kMetrics);
  EXPECT_EQ(match_route("GET", "/health/").status, RouteStatus::kFound);
}

TEST(ServerRouter, UnknownPathIs404AndWrongMethodIs405) {
  EXPECT_EQ(match_route("GET", "/v1/nope").status, RouteStatus::kNotFound);
  EXPECT_EQ(match_route("GET", "/").status, RouteStatus::kNotFound);
  EXPECT_EQ(match_route("GET", "").status, RouteStatus::kNotFound);
  EXPECT_EQ(match_route("POST", "/v1/completionsx").status, RouteStatus::kNotFound);
  EXPECT_EQ(match_route("GET", "/V1/MODELS").status, RouteStatus::kNotFound);  // case matters

  const RouteMatch m = match_route("GET", "/v1/chat/completions");
  EXPECT_EQ(m.status, RouteStatus::kMethodNotAllowed);
  EXPECT_EQ(m.allowed_method, "POST");
  EXPECT_EQ(match_route("POST", "/health").status, RouteStatus::kMethodNotAllowed);
  EXPECT_EQ(match_route("DELETE", "/v1/models").status, RouteStatus::kMethodNotAllowed);
}

TEST(ServerRouter, HeadMatchesGetRoutesOnly) {
  EXPECT_EQ(match_route("HEAD", "/health").status, RouteStatus::kFound);
  EXPECT_EQ(match_route("HEAD", "/v1/completions").status, RouteStatus::kMethodNotAllowed);
}

TEST(ServerRouter, OpenRoutesAndGenerationRoutes) {
  EXPECT_FALSE(route_requires_auth(Route::kHealth));
  EXPECT_FALSE(route_requires_auth(Route::kReady));
  EXPECT_FALSE(route_requires_auth(Route::kMetrics));
  EXPECT_TRUE(route_requires_auth(Route::kCompletions));
  EXPECT_TRUE(route_requires_auth(Route::kModels));
  EXPECT_TRUE(route_requires_auth(Route::kTokenize));
  EXPECT_FALSE(route_requires_model(Route::kReady));
  EXPECT_TRUE(route_requires_model(Route::kDetokenize));
  EXPECT_TRUE(route_generates(Route::kChatCompletions));
  EXPECT_TRUE(route_generates(Route::kCompletions));
  EXPECT_FALSE(route_generates(Route::kTokenize));
}

TEST(ServerConfig, DefaultsAreValid) { EXPECT_TRUE(validate(ServerConfig{}).ok()); }

TEST(ServerConfig, RejectsOutOfRangeLimitsNamingTheField) {
  ServerConfig c;
  c.max_concurrent_requests = 0;
  Status s = validate(c);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--max-concurrent-requests"), std::string::npos) << s.message();

  c = ServerConfig{};
  c.io_threads = 0;
  EXPECT_FALSE(validate(c).ok());
  c = ServerConfig{};
  c.max_body_bytes = 10;
  EXPECT_FALSE(validate(c).ok());
  c = ServerConfig{};
  c.max_header_bytes = 0;
  EXPECT_FALSE(validate(c).ok());
  c = ServerConfig{};
  c.shutdown_timeout = std::chrono::milliseconds(-1);
  EXPECT_FALSE(validate(c).ok());
  c = ServerConfig{};
  c.api_keys = {"ok", ""};
  EXPECT_FALSE(validate(c).ok());
  c = ServerConfig{};
  c.host = "";
  EXPECT_FALSE(validate(c).ok());
}

TEST(ServerConfig, TimeoutsAndConnectionCapNameTheirFlags) {
  const auto expect_names = [](const ServerConfig& c, const char* flag) {
    const Status s = validate(c);
    EXPECT_FALSE(s.ok()) << flag;
    EXPECT_NE(s.message().find(flag), std::string::npos) << s.message();
  };
  ServerConfig c;
  c.keepalive_interval = std::chrono::milliseconds(0);  // e.g. --sse-keepalive-interval 0.0001
  expect_names(c, "--sse-keepalive-interval");
  c = ServerConfig{};
  c.read_timeout = std::chrono::milliseconds(0);
  expect_names(c, "--http-read-timeout");
  c = ServerConfig{};
  c.idle_timeout = std::chrono::milliseconds(-5);
  expect_names(c, "--http-idle-timeout");
  c = ServerConfig{};
  c.max_connections = 0;
  expect_names(c, "--max-connections");
  c = ServerConfig{};
  c.keepalive_interval = std::chrono::milliseconds(50);
  c.read_timeout = std::chrono::milliseconds(1);
  c.idle_timeout = std::chrono::milliseconds(1);
  c.max_connections = 1;
  EXPECT_TRUE(validate(c).ok());
}

TEST(ServerConfig, ReadsApiKeyFileSkippingBlanksAndComments) {
  const std::string path = ::testing::TempDir() + "/tessera_keys.txt";
  {
    std::ofstream out(path);
    out << "# keys\n\n  sk-one  \r\nsk-two\n   \n#sk-off\n";
  }
  Result<std::vector<std::string>> keys = read_api_key_file(path);
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  EXPECT_EQ(keys.value(), (std::vector<std::string>{"sk-one", "sk-two"}));

  {
    std::ofstream out(path);
    out << "# nothing\n\n";
  }
  EXPECT_FALSE(read_api_key_file(path).ok());
  std::remove(path.c_str());
  EXPECT_FALSE(read_api_key_file(path + ".missing").ok());
}

}  // namespace
}  // namespace tessera::server

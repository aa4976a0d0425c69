// API-key checks: bearer parsing (scheme case, spacing, malformed values) and the constant-time
// comparison (equal / different content and lengths, multiple keys, disabled auth).
#include <gtest/gtest.h>

#include <string>

#include "tessera/server/auth.h"

namespace tessera::server {
namespace {

TEST(ServerAuth, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("sk-abc", "sk-abc"));
  EXPECT_FALSE(constant_time_equal("sk-abc", "sk-abd"));
  EXPECT_FALSE(constant_time_equal("sk-abc", "sk-ab"));
  EXPECT_FALSE(constant_time_equal("sk-ab", "sk-abc"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  // A prefix padded with NULs must not compare equal to the shorter string.
  EXPECT_FALSE(constant_time_equal(std::string("ab\0", 3), "ab"));
  EXPECT_FALSE(constant_time_equal("\xff", "\x7f"));
}

TEST(ServerAuth, ParseBearer) {
  EXPECT_EQ(parse_bearer("Bearer sk-1").value(), "sk-1");
  EXPECT_EQ(parse_bearer("bearer sk-1").value(), "sk-1");
  EXPECT_EQ(parse_bearer("BEARER   sk-1  ").value(), "sk-1");
  EXPECT_EQ(parse_bearer("  Bearer\tsk-1").value(), "sk-1");
  EXPECT_FALSE(parse_bearer("").has_value());
  EXPECT_FALSE(parse_bearer("Bearer").has_value());
  EXPECT_FALSE(parse_bearer("Bearer ").has_value());
  EXPECT_FALSE(parse_bearer("Bearersk-1").has_value());
  EXPECT_FALSE(parse_bearer("Basic dXNlcjpwYXNz").has_value());
  EXPECT_FALSE(parse_bearer("sk-1").has_value());
}

TEST(ServerAuth, CheckAgainstSeveralKeys) {
  ApiKeyAuth auth({"sk-first", "sk-second"});
  EXPECT_TRUE(auth.enabled());
  EXPECT_TRUE(auth.check("Bearer sk-first"));
  EXPECT_TRUE(auth.check("Bearer sk-second"));
  EXPECT_FALSE(auth.check("Bearer sk-third"));
  EXPECT_FALSE(auth.check("Bearer sk-firs"));
  EXPECT_FALSE(auth.check("Bearer sk-first2"));
  EXPECT_FALSE(auth.check("sk-first"));
  EXPECT_FALSE(auth.check(""));
}

TEST(ServerAuth, DisabledAcceptsAnything) {
  ApiKeyAuth auth({});
  EXPECT_FALSE(auth.enabled());
  EXPECT_TRUE(auth.check(""));
  EXPECT_TRUE(auth.check("Bearer whatever"));
}

}  // namespace
}  // namespace tessera::server

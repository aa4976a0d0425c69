// A call an op must refuse, and the check every op_checks test makes of it: kInvalidArgument
// with a message naming the op and the offending shapes.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "tessera/backend/backend.h"

namespace tessera::backend {

struct BadCall {
  std::string what;
  std::vector<std::string> must_mention;  // substrings of the message
  std::function<Status(Backend&)> call;
};

inline void expect_rejected(Backend& be, const BadCall& c) {
  const Status s = c.call(be);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument)
      << be.name() << " / " << c.what << ": " << s.to_string();
  for (const std::string& sub : c.must_mention) {
    EXPECT_NE(s.message().find(sub), std::string::npos)
        << be.name() << " / " << c.what << ": message '" << s.message() << "' does not mention '"
        << sub << "'";
  }
}

}  // namespace tessera::backend

// TESSERA_CHECK: aborts on a broken internal invariant, printing the condition and values.
// Use it for programmer errors only; expected failures (bad input) return a Status instead.
#pragma once

#include <fmt/format.h>

#include <string>

namespace tessera::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* condition,
                               const std::string& message);
}  // namespace tessera::detail

#define TESSERA_CHECK(cond, ...)                                                      \
  do {                                                                                \
    if (!(cond)) [[unlikely]] {                                                       \
      ::tessera::detail::check_failed(__FILE__, __LINE__, #cond,                      \
                                      ::fmt::format("" __VA_ARGS__));                 \
    }                                                                                 \
  } while (0)

#define TESSERA_CHECK_EQ(a, b) TESSERA_CHECK((a) == (b), "{} != {}", (a), (b))
#define TESSERA_CHECK_LE(a, b) TESSERA_CHECK((a) <= (b), "{} > {}", (a), (b))
#define TESSERA_CHECK_LT(a, b) TESSERA_CHECK((a) < (b), "{} >= {}", (a), (b))

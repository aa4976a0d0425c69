// Status formatting and the CHECK failure path.
#include "tessera/core/status.h"

#include <cstdio>
#include <cstdlib>
#include <iterator>

namespace tessera {

std::string Status::to_string() const {
  if (ok()) return "OK";
  static constexpr const char* kNames[] = {"OK",          "INVALID_ARGUMENT",   "NOT_FOUND",
                                           "OUT_OF_RANGE", "UNIMPLEMENTED",      "IO_ERROR",
                                           "DATA_LOSS",   "RESOURCE_EXHAUSTED", "INTERNAL",
                                           "UNAVAILABLE"};
  static_assert(std::size(kNames) == static_cast<size_t>(StatusCode::kUnavailable) + 1);
  return fmt::format("{}: {}", kNames[static_cast<int>(code_)], message_);
}

namespace detail {
void check_failed(const char* file, int line, const char* condition, const std::string& message) {
  std::fprintf(stderr, "TESSERA_CHECK failed at %s:%d: %s %s\n", file, line, condition,
               message.c_str());
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail

}  // namespace tessera

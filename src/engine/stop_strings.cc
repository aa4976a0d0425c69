// Stop-string matching over a stream of detokenized text (see stop_strings.h).
// Invariant: held_ never holds more than the longest stop string minus one byte between pushes.
#include "src/engine/stop_strings.h"

#include <algorithm>
#include <utility>

namespace tessera::engine {

StopStringFilter::StopStringFilter(std::vector<std::string> stops, bool include_stop_in_output)
    : stops_(std::move(stops)), include_stop_(include_stop_in_output) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string StopStringFilter::push(std::string_view text) {
  if (matched_) return {};
  held_.append(text);
  if (stops_.empty()) return std::exchange(held_, {});
  // Earliest match wins; among matches at the same position, the longest.
  size_t best_pos = std::string::npos;
  const std::string* best = nullptr;
  for (const std::string& stop : stops_) {
    const size_t pos = held_.find(stop);
    if (pos == std::string::npos) continue;
    if (pos < best_pos || (pos == best_pos && stop.size() > best->size())) {
      best_pos = pos;
      best = &stop;
    }
  }
  if (best != nullptr) {
    matched_ = *best;
    std::string out = held_.substr(0, best_pos + (include_stop_ ? best->size() : 0));
    held_.clear();
    return out;
  }
  const size_t keep = held_back_length();
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopStringFilter::flush() {
  if (matched_) return {};
  return std::exchange(held_, {});
}

size_t StopStringFilter::held_back_length() const {
  size_t longest = 0;
  for (const std::string& stop : stops_) {
    const size_t max_len = std::min(held_.size(), stop.size() - 1);
    for (size_t len = max_len; len > longest; --len) {
      if (std::string_view(held_).substr(held_.size() - len) ==
          std::string_view(stop).substr(0, len)) {
        longest = len;
        break;
      }
    }
  }
  return longest;
}

}  // namespace tessera::engine

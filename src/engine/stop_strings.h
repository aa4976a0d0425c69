// StopStringFilter: the text side of stop strings for one completion. Detokenized text goes in;
// text that can no longer be the start of a stop string comes out; a match ends the stream.
// Invariant: the concatenation of everything released is the input up to (and, when asked,
// including) the earliest stop-string match, or all of it when none matched; a stop string
// spread over several pushes is found exactly as if the text had come at once.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::engine {

class StopStringFilter {
 public:
  StopStringFilter(std::vector<std::string> stops, bool include_stop_in_output);

  // Appends `text` and returns what may be shown now. After a match it returns the text up to
  // the match (plus the stop string when included) and matched() becomes set; later pushes
  // return "".
  std::string push(std::string_view text);
  // Releases everything still held back (the stream ended for another reason).
  std::string flush();

  const std::optional<std::string>& matched() const { return matched_; }

 private:
  // Length of the longest suffix of held_ that is a proper prefix of some stop string.
  size_t held_back_length() const;

  std::vector<std::string> stops_;
  bool include_stop_;
  std::string held_;  // not yet released; may begin a stop string
  std::optional<std::string> matched_;
};

}  // namespace tessera::engine

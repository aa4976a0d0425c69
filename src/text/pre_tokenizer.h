// PreTokenizer: the compiled form of a PreTokenizerSpec — PCRE2 regexes (UTF + UCP, JIT where
// available) that split text into the pieces BPE sees.
// Invariant: pieces tile the input in order (kIsolated) or leave out only matches (kRemoved);
// each step sees one piece at a time, so look-arounds never cross a piece edge (as in HF).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "tessera/core/status.h"
#include "tessera/text/tokenizer.h"

namespace tessera::text {

class PreTokenizer {
 public:
  struct Piece {
    size_t offset;  // bytes from the start of the text given to split()
    size_t size;
  };

  static Result<PreTokenizer> compile(const PreTokenizerSpec& spec);
  PreTokenizer();  // no steps: the whole text is one piece
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;
  ~PreTokenizer();

  // Splits valid UTF-8 `text` into pieces (appended to *pieces after clearing it).
  void split(std::string_view text, std::vector<Piece>* pieces) const;

 private:
  struct Step;
  std::vector<std::unique_ptr<Step>> steps_;
};

// Regex sources shared by presets and the tokenizer.json reader.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace tessera::text

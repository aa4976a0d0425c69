// IncrementalDetokenizer: turns a stream of token ids into text one token at a time.
// Invariant: every string push() returns is complete, valid UTF-8, and the concatenation of all
// push() results plus finish() equals Tokenizer::decode() of the same ids.
#pragma once

#include <cstdint>
#include <string>

#include "tessera/text/tokenizer.h"

namespace tessera::text {

class IncrementalDetokenizer {
 public:
  // `tokenizer` must outlive this object.
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens = true);

  // Appends one token; returns the text that became complete (may be empty while a multi-byte
  // character is split across tokens). Bytes that can never complete become U+FFFD at once.
  std::string push(int32_t id);
  // Flushes what is held back: an incomplete trailing sequence becomes U+FFFD.
  std::string finish();
  // Bytes held back, waiting for the rest of a UTF-8 sequence (0..3).
  size_t num_pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;  // an incomplete (so far valid) UTF-8 prefix
};

}  // namespace tessera::text

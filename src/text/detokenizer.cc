// IncrementalDetokenizer: holds back at most one incomplete UTF-8 sequence between pushes.
// Invariant: pending_ is always a proper prefix of some valid UTF-8 sequence (0..3 bytes).
#include "tessera/text/detokenizer.h"

#include "src/text/utf8.h"

namespace tessera::text {

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string IncrementalDetokenizer::push(int32_t id) {
  if (skip_special_tokens_ && tokenizer_->is_special(id)) return {};
  pending_ += tokenizer_->token_to_piece(id);
  std::string out;
  const size_t consumed = utf8::append_lossy(pending_, /*final=*/false, &out);
  pending_.erase(0, consumed);
  return out;
}

std::string IncrementalDetokenizer::finish() {
  std::string out;
  utf8::append_lossy(pending_, /*final=*/true, &out);
  pending_.clear();
  return out;
}

}  // namespace tessera::text

// Grammar: constrained decoding for a sequence of segments — Literal(text), OneOf(texts) and
// JsonValue (any JSON value, or only an object) — matched byte by byte by a GrammarState, plus
// a TokenMask that turns a state into the set of token ids that keep the output in the grammar.
// Invariant: a GrammarState only ever holds a prefix of some sentence of its grammar: advance()
// of bytes that would leave the grammar returns false and leaves the state unchanged.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/core/status.h"

namespace tessera::text {
class Tokenizer;
}

namespace tessera::sampling {

struct GrammarSegment {
  enum class Kind : uint8_t { kLiteral, kOneOf, kJsonValue };
  Kind kind = Kind::kLiteral;
  std::vector<std::string> texts;  // kLiteral: one text; kOneOf: the options (non-empty each)
  bool object_only = false;        // kJsonValue: the value must be an object

  static GrammarSegment literal(std::string text);
  static GrammarSegment one_of(std::vector<std::string> options);
  static GrammarSegment json_value(bool object_only);
};

struct GrammarLimits {
  int32_t max_whitespace_run = 16;  // JSON whitespace bytes in a row (stops loops on spaces)
  int32_t max_depth = 32;           // JSON nesting (objects + arrays), at most 64
};

class Grammar {
 public:
  // invalid_argument for no segments, an empty literal or option, duplicate options, or
  // limits out of range.
  static Result<std::shared_ptr<const Grammar>> create(std::vector<GrammarSegment> segments,
                                                       GrammarLimits limits = {});
  // Shorthands: one JSON value (object_only: an object).
  static std::shared_ptr<const Grammar> json(bool object_only);

  const std::vector<GrammarSegment>& segments() const { return segments_; }
  const GrammarLimits& limits() const { return limits_; }

 private:
  Grammar() = default;
  std::vector<GrammarSegment> segments_;  // kOneOf options sorted, distinct
  GrammarLimits limits_;
};

// The matcher's position: trivially copyable (the token mask copies it per trie node).
struct GrammarCursor {
  uint16_t segment = 0;   // current segment; == segments().size() when all are done
  uint32_t offset = 0;    // bytes matched in the current Literal / OneOf
  uint32_t lo = 0, hi = 0;  // OneOf: options [lo, hi) still match (sorted, so a range)
  // JSON: mode, nesting (bit i of `stack` = 1 when level i is an object), and small counters.
  uint8_t mode = 0;
  uint8_t depth = 0;
  uint8_t ws_run = 0;
  uint8_t count = 0;       // \u hex digits left / literal bytes matched / UTF-8 bytes left
  uint8_t utf8_lo = 0x80, utf8_hi = 0xBF;  // the next UTF-8 continuation byte's range
  uint8_t word = 0;        // which of true / false / null
  uint8_t key = 0;         // 1 while the string being read is an object key
  uint64_t stack = 0;
};

class GrammarState {
 public:
  explicit GrammarState(std::shared_ptr<const Grammar> grammar);

  // Feeds bytes; false (and no change) when some byte would leave the grammar.
  bool advance(std::string_view bytes);
  // The bytes so far are a whole sentence of the grammar.
  bool is_complete() const;
  // Some further byte is accepted.
  bool can_continue() const;

  const Grammar& grammar() const { return *grammar_; }
  const GrammarCursor& cursor() const { return cursor_; }

 private:
  std::shared_ptr<const Grammar> grammar_;
  GrammarCursor cursor_;
};

// Token-level view of a grammar: every id's bytes, sorted into a trie order once, so that
// allowed() visits each shared prefix once and skips first bytes the state refuses.
class TokenMask {
 public:
  // `eos_ids` are allowed (only) when the state is complete. Special tokens other than those
  // and tokens with no bytes are never allowed.
  TokenMask(const text::Tokenizer& tokenizer, std::span<const int32_t> eos_ids);
  TokenMask(std::vector<std::string> pieces, std::vector<bool> special,
            std::span<const int32_t> eos_ids);  // for tests: pieces[id] (special: never text)

  // out[id] = 1 when id keeps `state` in its grammar; resized to vocab_size(). Returns the
  // number of allowed ids.
  int32_t allowed(const GrammarState& state, std::vector<uint8_t>& out) const;
  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  std::string_view piece(int32_t id) const { return pieces_[id]; }

 private:
  // Ids sorted by piece, the common prefix length of each with the previous one, and the range
  // of each first byte: [first[b], first[b + 1]).
  struct Trie {
    std::vector<int32_t> order;
    std::vector<uint16_t> lcp;
    std::array<uint32_t, 257> first{};
  };
  void build(std::span<const int32_t> eos_ids);
  Trie make_trie(std::vector<int32_t> ids) const;
  int32_t walk(const Trie& trie, const GrammarState& state, std::vector<uint8_t>& out) const;

  std::vector<std::string> pieces_;  // [vocab] bytes; "" for ids never allowed as text
  std::vector<int32_t> eos_ids_;
  Trie all_;                         // every text id
  // Inside a JSON string, ids of plain text (printable ASCII but '"' and '\\') always fit:
  // they are set from plain_ at once and only the others (string_) are walked.
  std::vector<uint8_t> plain_;       // [vocab]
  int32_t num_plain_ = 0;
  Trie string_;
};

}  // namespace tessera::sampling

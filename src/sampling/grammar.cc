// Grammar matcher (see grammar.h): a byte-at-a-time step over a trivially copyable cursor — a
// pushdown automaton for JSON (nesting kept as a bit stack), prefix ranges for OneOf — and the
// token mask's trie walk over sorted token pieces.
// Invariant: step() either accepts the byte into a new cursor or leaves the caller's unchanged;
// a segment that could end hands a byte it cannot take to the next segment (longest match).
#include "tessera/sampling/grammar.h"

#include <algorithm>
#include <numeric>

#include "tessera/core/check.h"
#include "tessera/text/tokenizer.h"

namespace tessera::sampling {
namespace {

enum Mode : uint8_t {
  kValue,     // a value is expected (whitespace first is fine)
  kArrFirst,  // after '[': a value or ']'
  kObjFirst,  // after '{': a key or '}'
  kObjKey,    // after ',' in an object: a key
  kColon,     // after a key
  kAfter,     // after a value inside a container: ',' or the closer
  kStr,
  kStrEsc,
  kStrHex,
  kStrUtf8,
  kNumMinus,
  kNumZero,
  kNumInt,
  kNumDot,
  kNumFrac,
  kNumE,
  kNumESign,
  kNumExp,
  kWord,
  kDone,  // the top-level value is complete
};

constexpr std::string_view kWords[3] = {"true", "false", "null"};

bool is_ws(uint8_t b) { return b == ' ' || b == '\t' || b == '\n' || b == '\r'; }
bool is_digit(uint8_t b) { return b >= '0' && b <= '9'; }
bool is_hex(uint8_t b) {
  return is_digit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
}
bool number_can_end(uint8_t mode) {
  return mode == kNumZero || mode == kNumInt || mode == kNumFrac || mode == kNumExp;
}
bool top_is_object(const GrammarCursor& c) { return (c.stack >> (c.depth - 1)) & 1u; }

void end_value(GrammarCursor& c) { c.mode = c.depth == 0 ? kDone : kAfter; }

bool open_container(GrammarCursor& c, const GrammarLimits& limits, bool object) {
  if (c.depth >= limits.max_depth) return false;
  if (object) {
    c.stack |= uint64_t{1} << c.depth;
  } else {
    c.stack &= ~(uint64_t{1} << c.depth);
  }
  ++c.depth;
  c.mode = object ? kObjFirst : kArrFirst;
  return true;
}

bool start_value(GrammarCursor& c, const GrammarSegment& seg, const GrammarLimits& limits,
                 uint8_t b) {
  if (c.depth == 0 && seg.object_only && b != '{') return false;
  switch (b) {
    case '{': return open_container(c, limits, true);
    case '[': return open_container(c, limits, false);
    case '"': c.mode = kStr; c.key = 0; return true;
    case '-': c.mode = kNumMinus; return true;
    case '0': c.mode = kNumZero; return true;
    case 't': case 'f': case 'n':
      c.mode = kWord;
      c.word = b == 't' ? 0 : (b == 'f' ? 1 : 2);
      c.count = 1;
      return true;
    default:
      if (b >= '1' && b <= '9') {
        c.mode = kNumInt;
        return true;
      }
      return false;
  }
}

// Starts a UTF-8 sequence inside a string (lead byte b >= 0x80).
bool start_utf8(GrammarCursor& c, uint8_t b) {
  c.utf8_lo = 0x80;
  c.utf8_hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) {
    c.count = 1;
  } else if (b >= 0xE0 && b <= 0xEF) {
    c.count = 2;
    if (b == 0xE0) c.utf8_lo = 0xA0;  // no overlongs
    if (b == 0xED) c.utf8_hi = 0x9F;  // no surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    c.count = 3;
    if (b == 0xF0) c.utf8_lo = 0x90;
    if (b == 0xF4) c.utf8_hi = 0x8F;  // <= U+10FFFF
  } else {
    return false;
  }
  c.mode = kStrUtf8;
  return true;
}

// One byte into a JSON segment; false when it does not fit (the cursor may then be garbage).
bool json_step(GrammarCursor& c, const GrammarSegment& seg, const GrammarLimits& limits,
               uint8_t b) {
  const bool structural = c.mode <= kAfter;
  if (structural && is_ws(b)) {
    if (c.ws_run >= limits.max_whitespace_run) return false;
    ++c.ws_run;
    return true;
  }
  if (structural) c.ws_run = 0;
  switch (c.mode) {
    case kValue:
      return start_value(c, seg, limits, b);
    case kArrFirst:
      if (b == ']') {
        --c.depth;
        end_value(c);
        return true;
      }
      return start_value(c, seg, limits, b);
    case kObjFirst:
    case kObjKey:
      if (b == '"') {
        c.mode = kStr;
        c.key = 1;
        return true;
      }
      if (b == '}' && c.mode == kObjFirst) {
        --c.depth;
        end_value(c);
        return true;
      }
      return false;
    case kColon:
      if (b != ':') return false;
      c.mode = kValue;
      return true;
    case kAfter:
      if (b == ',') {
        c.mode = top_is_object(c) ? kObjKey : kValue;
        return true;
      }
      if (b == (top_is_object(c) ? '}' : ']')) {
        --c.depth;
        end_value(c);
        return true;
      }
      return false;
    case kStr:
      if (b == '"') {
        if (c.key) {
          c.mode = kColon;
        } else {
          end_value(c);
        }
        return true;
      }
      if (b == '\\') {
        c.mode = kStrEsc;
        return true;
      }
      if (b < 0x20) return false;
      if (b < 0x80) return true;
      return start_utf8(c, b);
    case kStrEsc:
      if (b == 'u') {
        c.mode = kStrHex;
        c.count = 4;
        return true;
      }
      if (b == '"' || b == '\\' || b == '/' || b == 'b' || b == 'f' || b == 'n' || b == 'r' ||
          b == 't') {
        c.mode = kStr;
        return true;
      }
      return false;
    case kStrHex:
      if (!is_hex(b)) return false;
      if (--c.count == 0) c.mode = kStr;
      return true;
    case kStrUtf8:
      if (b < c.utf8_lo || b > c.utf8_hi) return false;
      c.utf8_lo = 0x80;
      c.utf8_hi = 0xBF;
      if (--c.count == 0) c.mode = kStr;
      return true;
    case kNumMinus:
      if (b == '0') {
        c.mode = kNumZero;
      } else if (b >= '1' && b <= '9') {
        c.mode = kNumInt;
      } else {
        return false;
      }
      return true;
    case kNumZero:
    case kNumInt:
    case kNumFrac:
    case kNumExp:
      if (is_digit(b) && c.mode != kNumZero) return true;
      if (b == '.' && (c.mode == kNumZero || c.mode == kNumInt)) {
        c.mode = kNumDot;
        return true;
      }
      if ((b == 'e' || b == 'E') && c.mode != kNumExp) {
        c.mode = kNumE;
        return true;
      }
      end_value(c);  // the number ended before this byte: the byte goes to what follows
      return json_step(c, seg, limits, b);
    case kNumDot:
      if (!is_digit(b)) return false;
      c.mode = kNumFrac;
      return true;
    case kNumE:
      if (b == '+' || b == '-') {
        c.mode = kNumESign;
        return true;
      }
      if (!is_digit(b)) return false;
      c.mode = kNumExp;
      return true;
    case kNumESign:
      if (!is_digit(b)) return false;
      c.mode = kNumExp;
      return true;
    case kWord: {
      const std::string_view w = kWords[c.word];
      if (w[c.count] != static_cast<char>(b)) return false;
      if (++c.count == w.size()) end_value(c);
      return true;
    }
    case kDone:
    default:
      return false;
  }
}

void enter_segment(const Grammar& g, GrammarCursor& c, uint16_t segment) {
  c = GrammarCursor{};
  c.segment = segment;
  if (segment < g.segments().size() && g.segments()[segment].kind == GrammarSegment::Kind::kOneOf) {
    c.hi = static_cast<uint32_t>(g.segments()[segment].texts.size());
  }
}

bool segment_can_end(const Grammar& g, const GrammarCursor& c) {
  const GrammarSegment& seg = g.segments()[c.segment];
  switch (seg.kind) {
    case GrammarSegment::Kind::kLiteral: return c.offset == seg.texts[0].size();
    case GrammarSegment::Kind::kOneOf: return seg.texts[c.lo].size() == c.offset;
    case GrammarSegment::Kind::kJsonValue:
      return c.mode == kDone || (c.depth == 0 && number_can_end(c.mode));
  }
  return false;
}

// The byte within the current segment only.
bool segment_step(const Grammar& g, GrammarCursor& c, uint8_t b) {
  const GrammarSegment& seg = g.segments()[c.segment];
  switch (seg.kind) {
    case GrammarSegment::Kind::kLiteral:
      if (c.offset >= seg.texts[0].size() || static_cast<uint8_t>(seg.texts[0][c.offset]) != b) {
        return false;
      }
      ++c.offset;
      return true;
    case GrammarSegment::Kind::kOneOf: {
      // Options are sorted: those with byte b at `offset` form a sub-range of [lo, hi).
      const auto byte_at = [&](uint32_t i) -> int {
        const std::string& t = seg.texts[i];
        return c.offset < t.size() ? static_cast<uint8_t>(t[c.offset]) : -1;
      };
      uint32_t lo = c.lo;
      while (lo < c.hi && byte_at(lo) < b) ++lo;
      uint32_t hi = lo;
      while (hi < c.hi && byte_at(hi) == b) ++hi;
      if (lo == hi) return false;
      c.lo = lo;
      c.hi = hi;
      ++c.offset;
      return true;
    }
    case GrammarSegment::Kind::kJsonValue:
      return json_step(c, seg, g.limits(), b);
  }
  return false;
}

// One byte through the whole grammar; `c` changes only on success.
bool step(const Grammar& g, GrammarCursor& c, uint8_t b) {
  // Fast path: plain text inside a JSON string (most of a mask's trie walk there).
  if (c.mode == kStr && b >= 0x20 && b < 0x80 && b != '"' && b != '\\' &&
      c.segment < g.segments().size() &&
      g.segments()[c.segment].kind == GrammarSegment::Kind::kJsonValue) {
    return true;
  }
  GrammarCursor next = c;
  while (next.segment < g.segments().size()) {
    GrammarCursor trial = next;
    if (segment_step(g, trial, b)) {
      c = trial;
      return true;
    }
    if (!segment_can_end(g, next)) return false;
    enter_segment(g, next, static_cast<uint16_t>(next.segment + 1));
  }
  return false;
}

}  // namespace

GrammarSegment GrammarSegment::literal(std::string text) {
  GrammarSegment s;
  s.kind = Kind::kLiteral;
  s.texts.push_back(std::move(text));
  return s;
}

GrammarSegment GrammarSegment::one_of(std::vector<std::string> options) {
  GrammarSegment s;
  s.kind = Kind::kOneOf;
  s.texts = std::move(options);
  return s;
}

GrammarSegment GrammarSegment::json_value(bool object_only) {
  GrammarSegment s;
  s.kind = Kind::kJsonValue;
  s.object_only = object_only;
  return s;
}

Result<std::shared_ptr<const Grammar>> Grammar::create(std::vector<GrammarSegment> segments,
                                                       GrammarLimits limits) {
  if (segments.empty()) return invalid_argument("a grammar needs at least one segment");
  if (segments.size() > 60000) return invalid_argument("too many grammar segments");
  if (limits.max_depth < 1 || limits.max_depth > 64) {
    return invalid_argument("grammar max_depth must be in [1, 64]");
  }
  if (limits.max_whitespace_run < 0 || limits.max_whitespace_run > 255) {
    return invalid_argument("grammar max_whitespace_run must be in [0, 255]");
  }
  for (GrammarSegment& s : segments) {
    if (s.kind == GrammarSegment::Kind::kLiteral) {
      if (s.texts.size() != 1 || s.texts[0].empty()) {
        return invalid_argument("a grammar literal must be one non-empty text");
      }
    } else if (s.kind == GrammarSegment::Kind::kOneOf) {
      if (s.texts.empty()) return invalid_argument("a grammar one_of needs options");
      std::sort(s.texts.begin(), s.texts.end());
      for (size_t i = 0; i < s.texts.size(); ++i) {
        if (s.texts[i].empty()) return invalid_argument("a grammar one_of option is empty");
        if (i > 0 && s.texts[i] == s.texts[i - 1]) {
          return invalid_argument("a grammar one_of option is repeated");
        }
      }
    }
  }
  std::shared_ptr<Grammar> g(new Grammar());
  g->segments_ = std::move(segments);
  g->limits_ = limits;
  return std::shared_ptr<const Grammar>(std::move(g));
}

std::shared_ptr<const Grammar> Grammar::json(bool object_only) {
  auto g = create({GrammarSegment::json_value(object_only)});
  TESSERA_CHECK(g.ok(), "the JSON grammar must build");
  return *g;
}

GrammarState::GrammarState(std::shared_ptr<const Grammar> grammar) : grammar_(std::move(grammar)) {
  TESSERA_CHECK(grammar_ != nullptr, "GrammarState of a null grammar");
  enter_segment(*grammar_, cursor_, 0);
}

bool GrammarState::advance(std::string_view bytes) {
  GrammarCursor c = cursor_;
  for (char ch : bytes) {
    if (!step(*grammar_, c, static_cast<uint8_t>(ch))) return false;
  }
  cursor_ = c;
  return true;
}

bool GrammarState::is_complete() const {
  const size_t n = grammar_->segments().size();
  if (cursor_.segment >= n) return true;
  return static_cast<size_t>(cursor_.segment) + 1 == n && segment_can_end(*grammar_, cursor_);
}

bool GrammarState::can_continue() const {
  for (int b = 0; b < 256; ++b) {
    GrammarCursor c = cursor_;
    if (step(*grammar_, c, static_cast<uint8_t>(b))) return true;
  }
  return false;
}

TokenMask::TokenMask(const text::Tokenizer& tokenizer, std::span<const int32_t> eos_ids) {
  const int32_t vocab = tokenizer.vocab_size();
  pieces_.resize(vocab);
  for (int32_t id = 0; id < vocab; ++id) {
    if (!tokenizer.is_special(id)) pieces_[id] = std::string(tokenizer.token_to_piece(id));
  }
  build(eos_ids);
}

TokenMask::TokenMask(std::vector<std::string> pieces, std::vector<bool> special,
                     std::span<const int32_t> eos_ids)
    : pieces_(std::move(pieces)) {
  for (size_t id = 0; id < pieces_.size() && id < special.size(); ++id) {
    if (special[id]) pieces_[id].clear();
  }
  build(eos_ids);
}

void TokenMask::build(std::span<const int32_t> eos_ids) {
  for (int32_t id : eos_ids) {
    if (id >= 0 && id < vocab_size()) {
      pieces_[id].clear();  // eos is never text
      eos_ids_.push_back(id);
    }
  }
  std::vector<int32_t> text_ids, other_ids;
  plain_.assign(pieces_.size(), 0);
  for (int32_t id = 0; id < vocab_size(); ++id) {
    const std::string& p = pieces_[id];
    if (p.empty()) continue;
    text_ids.push_back(id);
    const bool plain = std::all_of(p.begin(), p.end(), [](char ch) {
      const auto b = static_cast<uint8_t>(ch);
      return b >= 0x20 && b < 0x80 && b != '"' && b != '\\';
    });
    if (plain) {
      plain_[id] = 1;
      ++num_plain_;
    } else {
      other_ids.push_back(id);
    }
  }
  all_ = make_trie(std::move(text_ids));
  string_ = make_trie(std::move(other_ids));
}

TokenMask::Trie TokenMask::make_trie(std::vector<int32_t> ids) const {
  Trie t;
  t.order = std::move(ids);
  std::sort(t.order.begin(), t.order.end(), [&](int32_t a, int32_t b) {
    return pieces_[a] < pieces_[b] || (pieces_[a] == pieces_[b] && a < b);
  });
  t.lcp.assign(t.order.size(), 0);
  for (size_t i = 1; i < t.order.size(); ++i) {
    const std::string& a = pieces_[t.order[i - 1]];
    const std::string& b = pieces_[t.order[i]];
    size_t k = 0;
    while (k < a.size() && k < b.size() && a[k] == b[k]) ++k;
    t.lcp[i] = static_cast<uint16_t>(std::min<size_t>(k, 65535));
  }
  // first[b] = index of the first piece whose first byte is >= b.
  size_t i = 0;
  for (int b = 0; b <= 256; ++b) {
    while (i < t.order.size() && static_cast<uint8_t>(pieces_[t.order[i]][0]) < b) ++i;
    t.first[b] = static_cast<uint32_t>(i);
  }
  return t;
}

int32_t TokenMask::allowed(const GrammarState& state, std::vector<uint8_t>& out) const {
  const GrammarCursor& c = state.cursor();
  const Grammar& g = state.grammar();
  const bool in_string = c.mode == kStr && c.segment < g.segments().size() &&
                         g.segments()[c.segment].kind == GrammarSegment::Kind::kJsonValue;
  int32_t num_allowed = 0;
  if (in_string) {
    out = plain_;
    num_allowed = num_plain_;
  } else {
    out.assign(pieces_.size(), 0);
  }
  if (state.is_complete()) {
    for (int32_t id : eos_ids_) {
      out[id] = 1;
      ++num_allowed;
    }
  }
  return num_allowed + walk(in_string ? string_ : all_, state, out);
}

int32_t TokenMask::walk(const Trie& trie, const GrammarState& state,
                        std::vector<uint8_t>& out) const {
  const Grammar& g = state.grammar();
  int32_t num_allowed = 0;
  std::vector<GrammarCursor> states;  // states[k]: after the first k bytes of the current piece
  for (int b = 0; b < 256; ++b) {
    const uint32_t begin = trie.first[b], end = trie.first[b + 1];
    if (begin == end) continue;
    GrammarCursor first = state.cursor();
    if (!step(g, first, static_cast<uint8_t>(b))) continue;
    states.resize(2);
    states[0] = state.cursor();
    states[1] = first;
    size_t good = 1;  // bytes of the previous piece accepted (states[0..good] are valid)
    for (uint32_t i = begin; i < end; ++i) {
      const std::string& piece = pieces_[trie.order[i]];
      const size_t shared = i == begin ? 1 : trie.lcp[i];
      if (shared > good) continue;  // shares the byte that failed the previous piece
      if (states.size() < piece.size() + 1) states.resize(piece.size() + 1);
      size_t k = shared;
      for (; k < piece.size(); ++k) {
        states[k + 1] = states[k];
        if (!step(g, states[k + 1], static_cast<uint8_t>(piece[k]))) break;
      }
      good = k;
      if (k == piece.size()) {
        out[trie.order[i]] = 1;
        ++num_allowed;
      }
    }
  }
  return num_allowed;
}

}  // namespace tessera::sampling

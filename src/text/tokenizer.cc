// Tokenizer core: added-token splitting, pre-tokenization, the BPE merge loop, decode.
// Invariant: the merge loop applies, at each step, the lowest-rank pair (leftmost on ties) —
// the order HF `tokenizers` uses — via a lazily invalidated min-heap: O(n log n) per word.
#include "tessera/text/tokenizer.h"

#include <algorithm>
#include <array>
#include <functional>
#include <mutex>
#include <unordered_map>

#include "src/text/pre_tokenizer.h"
#include "src/text/utf8.h"
#include "tessera/core/check.h"

namespace tessera::text {
namespace {

constexpr size_t kMaxCacheEntries = 1 << 16;
constexpr size_t kMaxCachedWordBytes = 256;

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// Hashes std::string and std::string_view alike, so lookups by view allocate nothing.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// A byte trie over added-token contents for leftmost-longest matching.
class Trie {
 public:
  Trie() : nodes_(1) {}
  void insert(std::string_view key, int32_t value) {
    size_t node = 0;
    for (char c : key) {
      auto [it, inserted] = nodes_[node].children.try_emplace(static_cast<uint8_t>(c), 0);
      if (inserted) {
        it->second = nodes_.size();
        nodes_.emplace_back();
      }
      node = it->second;
    }
    nodes_[node].value = value;
  }
  bool empty() const { return nodes_.size() == 1; }
  // Longest key that starts at text[pos]; returns its length (0: none) and value.
  size_t longest(std::string_view text, size_t pos, int32_t* value) const {
    size_t node = 0, best = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      auto it = nodes_[node].children.find(static_cast<uint8_t>(text[i]));
      if (it == nodes_[node].children.end()) break;
      node = it->second;
      if (nodes_[node].value >= 0) {
        best = i + 1 - pos;
        *value = nodes_[node].value;
      }
    }
    return best;
  }

 private:
  struct Node {
    std::unordered_map<uint8_t, size_t> children;
    int32_t value = -1;
  };
  std::vector<Node> nodes_;
};

// A stretch of the input: plain text (id < 0) or one added token.
struct Segment {
  size_t offset, size;
  int32_t id;
};

struct Merge {
  int32_t rank;
  int32_t new_id;
};

}  // namespace

struct Tokenizer::Impl {
  TokenizerSpec spec;
  PreTokenizer pre;
  StringMap<int32_t> vocab;                    // byte-level token text -> id (model)
  StringMap<int32_t> by_text;                  // model + added tokens
  std::unordered_map<uint64_t, Merge> merges;  // (left id, right id) -> merge
  std::array<int32_t, 256> byte_ids{};         // id of each single-byte token, or -1
  std::vector<std::string> pieces;             // id -> raw bytes
  std::vector<std::string> texts;              // id -> vocabulary form
  std::vector<uint8_t> special;                // id -> special added token
  std::vector<AddedToken> added;               // by index (trie values)
  Trie raw_trie, normalized_trie;
  mutable std::mutex cache_mu;
  mutable StringMap<std::vector<int32_t>> cache;  // word bytes -> ids

  void split_added(std::string_view text, const Trie& trie, std::vector<Segment>* segs) const;
  void bpe(std::string_view word, std::vector<int32_t>* out) const;
  void merge_word(std::string_view word, std::vector<int32_t>* out) const;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Result<Tokenizer> Tokenizer::create(TokenizerSpec spec) {
  auto impl = std::make_unique<Impl>();
  TESSERA_ASSIGN_OR_RETURN(impl->pre, PreTokenizer::compile(spec.pre));
  int32_t num_ids = static_cast<int32_t>(spec.tokens.size());
  for (const AddedToken& a : spec.added_tokens) {
    if (a.id < 0) return invalid_argument("added token '{}' has negative id {}", a.content, a.id);
    if (a.content.empty()) return invalid_argument("added token {} is empty", a.id);
    num_ids = std::max(num_ids, a.id + 1);
  }
  impl->pieces.resize(num_ids);
  impl->texts.resize(num_ids);
  impl->special.assign(num_ids, 0);
  for (int32_t id = 0; id < static_cast<int32_t>(spec.tokens.size()); ++id) {
    const std::string& t = spec.tokens[id];
    if (t.empty()) continue;
    impl->vocab.try_emplace(t, id);
    impl->by_text.try_emplace(t, id);
    impl->texts[id] = t;
    impl->pieces[id] = utf8::byte_level_to_bytes(t);
  }
  for (const AddedToken& a : spec.added_tokens) {
    impl->by_text[a.content] = a.id;
    impl->texts[a.id] = a.content;
    impl->pieces[a.id] = utf8::byte_level_to_bytes(a.content);
    impl->special[a.id] = a.special ? 1 : 0;
    const int32_t index = static_cast<int32_t>(impl->added.size());
    impl->added.push_back(a);
    (a.normalized ? impl->normalized_trie : impl->raw_trie).insert(a.content, index);
  }
  for (int b = 0; b < 256; ++b) {
    std::string s;
    utf8::append_code_point(utf8::byte_to_code_point(static_cast<uint8_t>(b)), &s);
    auto it = impl->vocab.find(s);
    impl->byte_ids[b] = it == impl->vocab.end() ? -1 : it->second;
  }
  impl->merges.reserve(spec.merges.size());
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [left, right] = spec.merges[rank];
    auto l = impl->vocab.find(left), r = impl->vocab.find(right);
    auto m = impl->vocab.find(left + right);
    if (l == impl->vocab.end() || r == impl->vocab.end() || m == impl->vocab.end()) {
      return invalid_argument("merge #{} '{} {}' uses a token missing from the vocabulary", rank,
                              left, right);
    }
    // NOTE: a repeated pair keeps its last rank, as HF's map built from the merge list does.
    impl->merges[pair_key(l->second, r->second)] = {static_cast<int32_t>(rank), m->second};
  }
  for (auto id : {spec.bos_id, spec.eos_id, spec.unk_id, spec.pad_id}) {
    if (id && (*id < 0 || *id >= num_ids)) {
      return invalid_argument("special token id {} is outside the vocabulary (size {})", *id,
                              num_ids);
    }
  }
  if (spec.add_bos && !spec.bos_id) return invalid_argument("add_bos is set but bos id is not");
  if (spec.add_eos && !spec.eos_id) return invalid_argument("add_eos is set but eos id is not");
  impl->spec = std::move(spec);
  return Tokenizer(std::move(impl));
}

void Tokenizer::Impl::split_added(std::string_view text, const Trie& trie,
                                  std::vector<Segment>* segs) const {
  std::vector<Segment> out;
  for (const Segment& seg : *segs) {
    if (seg.id >= 0 || trie.empty()) {
      out.push_back(seg);
      continue;
    }
    const std::string_view s = text.substr(seg.offset, seg.size);
    size_t last = 0;  // end of the previous emitted stretch, relative to s
    size_t pos = 0;
    while (pos < s.size()) {
      int32_t index = -1;
      const size_t len = trie.longest(s, pos, &index);
      if (len == 0) {
        ++pos;
        continue;
      }
      const AddedToken& a = added[index];
      size_t begin = pos, end = pos + len;
      while (a.lstrip && begin > last) {
        size_t prev = 0;
        if (!utf8::is_whitespace(utf8::prev_code_point(s, begin, &prev))) break;
        begin = prev;
      }
      while (a.rstrip && end < s.size()) {
        size_t next = end;
        if (!utf8::is_whitespace(utf8::next_code_point(s, &next))) break;
        end = next;
      }
      if (begin > last) out.push_back({seg.offset + last, begin - last, -1});
      out.push_back({seg.offset + begin, end - begin, a.id});
      last = pos = end;
    }
    if (last < s.size()) out.push_back({seg.offset + last, s.size() - last, -1});
  }
  segs->swap(out);
}

void Tokenizer::Impl::merge_word(std::string_view word, std::vector<int32_t>* out) const {
  struct Candidate {
    int32_t rank, pos, new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  thread_local std::vector<int32_t> ids, prev, next;
  thread_local std::vector<Candidate> heap;  // min-heap by (rank, pos)
  ids.clear();
  for (char c : word) {
    const int32_t id = byte_ids[static_cast<uint8_t>(c)];
    if (id >= 0) ids.push_back(id);  // NOTE: HF drops bytes with no token when there is no unk
  }
  const int32_t n = static_cast<int32_t>(ids.size());
  prev.resize(n);
  next.resize(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  heap.clear();
  auto push_pair = [&](int32_t pos) {
    if (pos < 0 || next[pos] < 0) return;
    auto it = merges.find(pair_key(ids[pos], ids[next[pos]]));
    if (it == merges.end()) return;
    heap.push_back({it->second.rank, pos, it->second.new_id});
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const Candidate top = heap.back();
    heap.pop_back();
    if (ids[top.pos] < 0 || next[top.pos] < 0) continue;  // consumed, or now the last symbol
    const int32_t right = next[top.pos];
    auto it = merges.find(pair_key(ids[top.pos], ids[right]));
    if (it == merges.end() || it->second.new_id != top.new_id) continue;  // stale
    ids[top.pos] = top.new_id;
    ids[right] = -1;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    push_pair(prev[top.pos]);
    push_pair(top.pos);
  }
  for (int32_t i = 0; i < n; ++i) {
    if (ids[i] >= 0) out->push_back(ids[i]);
  }
}

void Tokenizer::Impl::bpe(std::string_view word, std::vector<int32_t>* out) const {
  if (spec.ignore_merges) {
    auto it = vocab.find(utf8::bytes_to_byte_level(word));
    if (it != vocab.end()) {
      out->push_back(it->second);
      return;
    }
  }
  if (word.size() == 1) {
    const int32_t id = byte_ids[static_cast<uint8_t>(word[0])];
    if (id >= 0) out->push_back(id);
    return;
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mu);
    auto it = cache.find(word);
    if (it != cache.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out->size();
  merge_word(word, out);
  if (cacheable) {
    std::lock_guard lock(cache_mu);
    if (cache.size() >= kMaxCacheEntries) cache.clear();
    cache.try_emplace(std::string(word), out->begin() + first, out->end());
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view input, bool add_special_tokens) const {
  const Impl& m = *impl_;
  std::string repaired;
  std::string_view text = input;
  if (!utf8::is_valid(input)) {
    utf8::append_lossy(input, /*final=*/true, &repaired);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  if (add_special_tokens && m.spec.add_bos) ids.push_back(*m.spec.bos_id);
  std::vector<Segment> segs;
  if (!text.empty()) segs.push_back({0, text.size(), -1});
  m.split_added(text, m.raw_trie, &segs);
  m.split_added(text, m.normalized_trie, &segs);
  std::vector<PreTokenizer::Piece> pieces;
  for (const Segment& seg : segs) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    const std::string_view s = text.substr(seg.offset, seg.size);
    m.pre.split(s, &pieces);
    for (const auto& p : pieces) m.bpe(s.substr(p.offset, p.size), &ids);
  }
  if (add_special_tokens && m.spec.add_eos) ids.push_back(*m.spec.eos_id);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    if (skip_special_tokens && impl_->special[id]) continue;
    bytes += impl_->pieces[id];
  }
  if (utf8::is_valid(bytes)) return bytes;
  std::string out;
  utf8::append_lossy(bytes, /*final=*/true, &out);
  return out;
}

std::string_view Tokenizer::token_to_piece(int32_t id) const {
  return id >= 0 && id < vocab_size() ? std::string_view(impl_->pieces[id]) : std::string_view();
}
std::string_view Tokenizer::token_text(int32_t id) const {
  return id >= 0 && id < vocab_size() ? std::string_view(impl_->texts[id]) : std::string_view();
}
std::optional<int32_t> Tokenizer::token_to_id(std::string_view token_text) const {
  auto it = impl_->by_text.find(token_text);
  if (it == impl_->by_text.end()) return std::nullopt;
  return it->second;
}
bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->special[id] != 0;
}
int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->pieces.size()); }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->spec.bos_id; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->spec.eos_id; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->spec.pad_id; }
bool Tokenizer::add_bos() const { return impl_->spec.add_bos; }
const std::string& Tokenizer::pre_tokenizer_name() const { return impl_->spec.pre.name; }

}  // namespace tessera::text

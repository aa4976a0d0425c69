// Byte-level BPE tokenizer (GPT-2 / Llama-3 / SmolLM2 / DeepSeek-V3 / Qwen2 families), built
// from a plain TokenizerSpec that HF tokenizer.json or GGUF metadata fills in.
// Invariant: encode() is a pure function of the text (the word cache only memoises it), matches
// HF `tokenizers` id for id, and decode(encode(t)) == t for every valid UTF-8 text t.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tessera/core/status.h"

namespace tessera::model {
class GgufFile;
}  // namespace tessera::model

namespace tessera::text {

// How one Split step treats its matches (HF SplitDelimiterBehavior; only these two exist here).
enum class SplitBehavior { kIsolated, kRemoved };

// One regex split of every current piece: matches and the gaps between them become pieces.
struct PreTokenizerStep {
  std::string pattern;  // PCRE2 syntax, compiled with UTF + UCP
  SplitBehavior behavior = SplitBehavior::kIsolated;
};

// A pre-tokenizer is a sequence of regex splits; the byte-level mapping is implicit (always on).
struct PreTokenizerSpec {
  std::string name;  // "gpt2", "llama3", "smollm", "deepseek-v3", "qwen2" or "custom"
  std::vector<PreTokenizerStep> steps;
};

// Known pre-tokenizers by GGUF `tokenizer.ggml.pre` name ("gpt2", "llama-bpe", "smollm",
// "deepseek-v3", "qwen2", ...); an unknown name is an error that lists the supported ones.
Result<PreTokenizerSpec> pre_tokenizer_preset(std::string_view gguf_pre_name);

struct AddedToken {
  std::string content;  // raw UTF-8 matched in the input text
  int32_t id = 0;
  bool special = true;      // skipped by decode(skip_special_tokens = true)
  bool lstrip = false;      // a match swallows whitespace on its left
  bool rstrip = false;      // ... and on its right
  bool normalized = false;  // HF matches non-normalized tokens first, then normalized ones
};

struct TokenizerSpec {
  std::vector<std::string> tokens;  // id -> token in byte-level form ("Ġthe"); "" marks a gap
  std::vector<std::pair<std::string, std::string>> merges;  // by rank, best first
  std::vector<AddedToken> added_tokens;  // ids may point into `tokens` or past its end
  PreTokenizerSpec pre;
  bool ignore_merges = false;  // a whole pre-token found in the vocab is one token (Llama-3)
  std::optional<int32_t> bos_id, eos_id, unk_id, pad_id;
  bool add_bos = false;  // encode(add_special_tokens = true) prepends bos
  bool add_eos = false;  // ... and appends eos
};

class Tokenizer {
 public:
  static Result<Tokenizer> create(TokenizerSpec spec);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Text -> ids. Added tokens in the text are always recognised (as HF does); invalid UTF-8 is
  // first replaced by U+FFFD. add_special_tokens adds bos/eos as the spec says.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // Ids -> text; bytes that are not valid UTF-8 become U+FFFD (maximal subparts, as HF/Rust).
  // Unknown ids are skipped.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  // The raw bytes a token stands for (possibly a partial UTF-8 sequence); "" for unknown ids.
  std::string_view token_to_piece(int32_t id) const;
  // The token's vocabulary form ("Ġthe", "<|im_start|>"); "" for unknown ids.
  std::string_view token_text(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token_text) const;
  bool is_special(int32_t id) const;

  int32_t vocab_size() const;  // max id + 1 over vocab and added tokens
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  bool add_bos() const;
  const std::string& pre_tokenizer_name() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// HF tokenizer.json text (+ optional tokenizer_config.json text for bos/eos/add_bos_token).
Result<TokenizerSpec> tokenizer_spec_from_json(std::string_view tokenizer_json,
                                               std::optional<std::string_view> config_json);
// Reads `path` (a tokenizer.json, or a directory holding one) and tokenizer_config.json beside it.
Result<Tokenizer> tokenizer_from_json_file(const std::string& path);

// GGUF `tokenizer.ggml.*` metadata (model "gpt2" only).
Result<TokenizerSpec> tokenizer_spec_from_gguf(const model::GgufFile& gguf);
Result<Tokenizer> tokenizer_from_gguf(const model::GgufFile& gguf);

}  // namespace tessera::text

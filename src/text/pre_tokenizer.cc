// PCRE2-backed pre-tokenizer steps and the named presets (GGUF `tokenizer.ggml.pre`).
// Invariant: a step never produces an empty piece, and never loops on an empty match.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "src/text/pre_tokenizer.h"

#include <pcre2.h>

#include <string>

#include "tessera/core/logging.h"

namespace tessera::text {
namespace {

constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek-V3: digits in runs of 1-3, CJK (Han, Hiragana, Katakana) runs, then the main regex.
constexpr std::string_view kDeepSeekDigits = R"(\p{N}{1,3})";
constexpr std::string_view kDeepSeekCjk = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+";
constexpr std::string_view kDeepSeekMain =
    "[!\"#$%&'()*+,\\-./"
    ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";

// NOTE: PCRE2's \s (even with UCP) also matches U+180E, which stopped being White_Space in
// Unicode 6.3; HF's engine (and Rust's char::is_whitespace) do not. Spell \s and \S as the
// White_Space property instead (PCRE2 >= 10.40 knows binary properties).
std::string normalize_pattern(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 32);
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '\\' || i + 1 == pattern.size()) {
      out += pattern[i];
      continue;
    }
    const char c = pattern[++i];
    if (c == 's') {
      out += "\\p{White_Space}";
    } else if (c == 'S') {
      out += "\\P{White_Space}";
    } else {
      out += '\\';
      out += c;
    }
  }
  return out;
}

PreTokenizerStep isolated(std::string_view pattern) {
  return {std::string(pattern), SplitBehavior::kIsolated};
}

}  // namespace

struct PreTokenizer::Step {
  pcre2_code* code = nullptr;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  ~Step() { pcre2_code_free(code); }
};

PreTokenizer::PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;

Result<PreTokenizer> PreTokenizer::compile(const PreTokenizerSpec& spec) {
  PreTokenizer pre;
  for (const PreTokenizerStep& s : spec.steps) {
    auto step = std::make_unique<Step>();
    step->behavior = s.behavior;
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    const std::string pattern = normalize_pattern(s.pattern);
    step->code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                      PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &error_offset, nullptr);
    if (step->code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return invalid_argument("pre-tokenizer regex /{}/ does not compile at offset {}: {}",
                              s.pattern, error_offset, reinterpret_cast<const char*>(message));
    }
    // NOTE: JIT is an optimisation only; without it (unsupported CPU) matching is identical.
    if (pcre2_jit_compile(step->code, PCRE2_JIT_COMPLETE) != 0) {
      TESSERA_LOG_DEBUG("PCRE2 JIT unavailable for /{}/; using the interpreter", s.pattern);
    }
    pre.steps_.push_back(std::move(step));
  }
  return pre;
}

void PreTokenizer::split(std::string_view text, std::vector<Piece>* pieces) const {
  pieces->clear();
  if (text.empty()) return;
  pieces->push_back({0, text.size()});
  std::vector<Piece> next;
  for (const auto& step : steps_) {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(step->code, nullptr);
    next.clear();
    next.reserve(pieces->size() * 2);
    for (const Piece& piece : *pieces) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + piece.offset);
      size_t start = 0;    // where the next search begins, relative to the piece
      size_t emitted = 0;  // end of what has been turned into pieces so far
      while (start < piece.size) {
        const int rc =
            pcre2_match(step->code, subject, piece.size, start, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc < 0) {
          if (rc != PCRE2_ERROR_NOMATCH) {
            TESSERA_LOG_WARN("pre-tokenizer regex failed ({}); keeping the rest as one piece", rc);
          }
          break;
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t m0 = ov[0], m1 = ov[1];
        if (m1 == m0) {  // empty match: step over one character
          start = m0 + 1;
          while (start < piece.size && (subject[start] & 0xC0) == 0x80) ++start;
          continue;
        }
        if (m0 > emitted) next.push_back({piece.offset + emitted, m0 - emitted});
        if (step->behavior == SplitBehavior::kIsolated) {
          next.push_back({piece.offset + m0, m1 - m0});
        }
        emitted = start = m1;
      }
      if (emitted < piece.size) next.push_back({piece.offset + emitted, piece.size - emitted});
    }
    pcre2_match_data_free(md);
    pieces->swap(next);
  }
}

Result<PreTokenizerSpec> pre_tokenizer_preset(std::string_view name) {
  if (name == "gpt2") return PreTokenizerSpec{"gpt2", {isolated(kGpt2Pattern)}};
  if (name == "llama-bpe" || name == "llama3") {
    return PreTokenizerSpec{"llama3", {isolated(kLlama3Pattern)}};
  }
  if (name == "smollm") {
    return PreTokenizerSpec{"smollm", {isolated(R"(\p{N})"), isolated(kGpt2Pattern)}};
  }
  if (name == "deepseek-v3") {
    return PreTokenizerSpec{
        "deepseek-v3",
        {isolated(kDeepSeekDigits), isolated(kDeepSeekCjk), isolated(kDeepSeekMain)}};
  }
  if (name == "qwen2") return PreTokenizerSpec{"qwen2", {isolated(kQwen2Pattern)}};
  return unimplemented(
      "unknown pre-tokenizer '{}'; supported: gpt2, llama-bpe, smollm, deepseek-v3, qwen2", name);
}

}  // namespace tessera::text

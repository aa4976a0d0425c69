// UTF-8 helpers and the GPT-2 byte <-> unicode mapping that byte-level BPE vocabularies use.
// Invariant: replacement of invalid input follows the Unicode "maximal subpart" practice (as
// Rust's String::from_utf8_lossy does), so our U+FFFD count matches HF `tokenizers` exactly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tessera::text::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Appends `in` to `out` with invalid sequences replaced by U+FFFD. With `final` false an
// incomplete (so far valid) sequence at the very end is not consumed; returns bytes consumed.
size_t append_lossy(std::string_view in, bool final, std::string* out);
// True when `in` is entirely valid UTF-8.
bool is_valid(std::string_view in);
// Decodes one code point at `pos` of valid UTF-8 and advances `pos`.
char32_t next_code_point(std::string_view in, size_t* pos);
// Decodes the code point that ends at `end` (valid UTF-8); sets *start to its first byte.
char32_t prev_code_point(std::string_view in, size_t end, size_t* start);
void append_code_point(char32_t cp, std::string* out);
// Unicode White_Space (what Rust's char::is_whitespace tests).
bool is_whitespace(char32_t cp);

// GPT-2 byte-level mapping: every byte has a printable code point stand-in.
char32_t byte_to_code_point(uint8_t byte);
// The byte a stand-in code point maps back to, or -1 when `cp` is not a stand-in.
int code_point_to_byte(char32_t cp);
// The byte-level form of raw bytes ("the" -> "the", " " -> "Ġ").
std::string bytes_to_byte_level(std::string_view bytes);
// The bytes a vocabulary token stands for: its stand-ins mapped back, or, when some character
// is not a stand-in (an added token such as "<｜User｜>"), the token's own UTF-8.
std::string byte_level_to_bytes(std::string_view token);

}  // namespace tessera::text::utf8

// UTF-8 validation, lossy repair and the GPT-2 byte-level mapping (see utf8.h).
// Invariant: the lossy decoder consumes input in maximal subparts, one U+FFFD per subpart.
#include "src/text/utf8.h"

#include <array>

namespace tessera::text::utf8 {
namespace {

// Length of a sequence that starts with `lead` (0: never valid) and the range of its 2nd byte.
struct LeadInfo {
  int length;
  uint8_t lo, hi;
};

LeadInfo lead_info(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

struct ByteTables {
  std::array<char32_t, 256> to_cp{};
  std::array<int16_t, 512> to_byte{};
  ByteTables() {
    to_byte.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t cp = printable ? static_cast<char32_t>(b) : 256 + extra++;
      to_cp[b] = cp;
      to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteTables& tables() {
  static const ByteTables t;
  return t;
}

}  // namespace

size_t append_lossy(std::string_view in, bool final, std::string* out) {
  const auto* s = reinterpret_cast<const uint8_t*>(in.data());
  const size_t n = in.size();
  size_t i = 0;
  size_t run_start = 0;  // start of the current run of valid bytes, copied in one go
  while (i < n) {
    const uint8_t b = s[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    const LeadInfo info = lead_info(b);
    size_t k = 1;  // bytes of the candidate sequence that are acceptable so far
    if (info.length > 0) {
      while (k < static_cast<size_t>(info.length) && i + k < n) {
        const uint8_t c = s[i + k];
        const bool ok = (k == 1) ? (c >= info.lo && c <= info.hi) : (c >= 0x80 && c <= 0xBF);
        if (!ok) break;
        ++k;
      }
      if (k == static_cast<size_t>(info.length)) {
        i += k;
        continue;
      }
      if (i + k == n && !final) {  // incomplete but could still complete: hold it back
        out->append(in.substr(run_start, i - run_start));
        return i;
      }
    }
    out->append(in.substr(run_start, i - run_start));
    out->append(kReplacement);
    i += k;
    run_start = i;
  }
  out->append(in.substr(run_start, n - run_start));
  return n;
}

bool is_valid(std::string_view in) {
  const auto* s = reinterpret_cast<const uint8_t*>(in.data());
  const size_t n = in.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    const LeadInfo info = lead_info(s[i]);
    if (info.length == 0 || i + info.length > n) return false;
    if (s[i + 1] < info.lo || s[i + 1] > info.hi) return false;
    for (int k = 2; k < info.length; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return false;
    }
    i += info.length;
  }
  return true;
}

char32_t next_code_point(std::string_view in, size_t* pos) {
  const auto* s = reinterpret_cast<const uint8_t*>(in.data());
  size_t i = *pos;
  const uint8_t b = s[i];
  if (b < 0x80) {
    *pos = i + 1;
    return b;
  }
  const int len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
  char32_t cp = b & (0x7F >> len);
  for (int k = 1; k < len && i + k < in.size(); ++k) cp = (cp << 6) | (s[i + k] & 0x3F);
  *pos = i + len;
  return cp;
}

char32_t prev_code_point(std::string_view in, size_t end, size_t* start) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<uint8_t>(in[i]) & 0xC0) == 0x80) --i;
  *start = i;
  size_t p = i;
  return next_code_point(in, &p);
}

void append_code_point(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_whitespace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

char32_t byte_to_code_point(uint8_t byte) { return tables().to_cp[byte]; }

int code_point_to_byte(char32_t cp) {
  return cp < tables().to_byte.size() ? tables().to_byte[cp] : -1;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_code_point(byte_to_code_point(static_cast<uint8_t>(c)), &out);
  return out;
}

std::string byte_level_to_bytes(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  size_t pos = 0;
  while (pos < token.size()) {
    const int b = code_point_to_byte(next_code_point(token, &pos));
    if (b < 0) return std::string(token);
    out.push_back(static_cast<char>(b));
  }
  return out;
}

}  // namespace tessera::text::utf8

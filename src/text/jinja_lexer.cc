// Jinja-subset lexer (see jinja_lexer.h). Whitespace rules, as Jinja's lexer applies them:
// `{%-`/`{{-`/`{#-` strip all whitespace before the tag, `-%}`/`-}}`/`-#}` all after it; with
// trim_blocks one newline after `%}` or `#}` goes; with lstrip_blocks spaces and tabs between
// a line start and `{%`/`{#` go, unless the tag opens with `+`.
#include "src/text/jinja_lexer.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>

namespace tessera::text::jinja {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  Result<std::vector<Token>> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      size_t tag = find_tag(pos_);
      if (tag == std::string::npos) {
        emit_text(src_.substr(pos_), pos_);
        break;
      }
      std::string text = src_.substr(pos_, tag - pos_);
      char kind = src_[tag + 1];
      char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+')
                      ? src_[tag + 2]
                      : 0;
      if (sign == '-') {
        size_t end = text.size();
        while (end > 0 && is_space(text[end - 1])) --end;
        text.resize(end);
      } else if (sign != '+' && kind != '{') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size()) {
          bool all_ws = true;
          for (size_t i = l_pos; i < text.size(); ++i) all_ws = all_ws && is_space(text[i]);
          if (all_ws) text.resize(l_pos);
        }
      }
      emit_text(text, pos_);
      size_t after = tag + 2 + (sign ? 1 : 0);
      Status st;
      if (kind == '#') {
        st = lex_comment(tag, after);
      } else if (kind == '%' && is_raw(after)) {
        st = lex_raw(tag, after);
      } else {
        st = lex_tag(tag, after, kind == '%');
      }
      if (!st.ok()) return st;
      line_starting = pos_ > 0 && src_[pos_ - 1] == '\n';
    }
    Token eof;
    eof.type = Token::Type::kEof;
    position(src_.size(), eof);
    tokens_.push_back(eof);
    return std::move(tokens_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return std::string::npos;
  }

  void position(size_t offset, Token& t) {
    // Incremental line/column tracking; offsets only grow.
    while (line_pos_ < offset && line_pos_ < src_.size()) {
      if (src_[line_pos_] == '\n') {
        ++line_;
        column_ = 1;
      } else {
        ++column_;
      }
      ++line_pos_;
    }
    t.line = line_;
    t.column = column_;
  }

  Status error_at(size_t offset, const std::string& what) {
    Token t;
    position(offset, t);
    return invalid_argument("chat template syntax error at line {}, column {}: {}", t.line,
                            t.column, what);
  }

  void emit_text(std::string text, size_t offset) {
    if (text.empty()) return;
    Token t;
    t.type = Token::Type::kText;
    position(offset, t);
    t.text = std::move(text);
    tokens_.push_back(std::move(t));
  }

  void push(Token::Type type, size_t offset, std::string text = {}) {
    Token t;
    t.type = type;
    position(offset, t);
    t.text = std::move(text);
    tokens_.push_back(std::move(t));
  }

  // After a tag end: `-` strips all whitespace, plain block/comment ends drop one newline.
  void after_end(bool strip_all, bool trim_newline) {
    if (strip_all) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
    } else if (trim_newline && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
  }

  Status lex_comment(size_t tag, size_t after) {
    size_t end = src_.find("#}", after);
    if (end == std::string::npos) return error_at(tag, "unterminated comment `{#`");
    bool minus = end > after && src_[end - 1] == '-';
    bool plus = end > after && src_[end - 1] == '+';
    pos_ = end + 2;
    after_end(minus, !plus && !minus);
    return {};
  }

  size_t skip_ws(size_t p) const {
    while (p < src_.size() && is_space(src_[p])) ++p;
    return p;
  }

  // Matches `[-+]?%}` at p; returns the offset after it or npos.
  size_t block_end_at(size_t p, char* sign) const {
    *sign = 0;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) {
      *sign = src_[p];
      ++p;
    }
    if (src_.compare(p, 2, "%}") == 0) return p + 2;
    return std::string::npos;
  }

  bool is_raw(size_t after) const {
    size_t p = skip_ws(after);
    if (src_.compare(p, 3, "raw") != 0) return false;
    p = skip_ws(p + 3);
    char sign;
    return block_end_at(p, &sign) != std::string::npos;
  }

  Status lex_raw(size_t tag, size_t after) {
    char sign;
    size_t p = block_end_at(skip_ws(skip_ws(after) + 3), &sign);
    pos_ = p;
    after_end(sign == '-', false);
    size_t search = pos_;
    while (true) {
      size_t open = src_.find("{%", search);
      if (open == std::string::npos) return error_at(tag, "unterminated `{% raw %}` block");
      size_t q = open + 2;
      char open_sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) open_sign = src_[q++];
      q = skip_ws(q);
      if (src_.compare(q, 6, "endraw") == 0) {
        char end_sign;
        size_t end = block_end_at(skip_ws(q + 6), &end_sign);
        if (end != std::string::npos) {
          std::string text = src_.substr(pos_, open - pos_);
          if (open_sign == '-') {
            while (!text.empty() && is_space(text.back())) text.pop_back();
          }
          emit_text(text, pos_);
          pos_ = end;
          after_end(end_sign == '-', end_sign == 0);
          return {};
        }
      }
      search = open + 2;
    }
  }

  Status lex_tag(size_t tag, size_t after, bool is_block) {
    push(is_block ? Token::Type::kBlockBegin : Token::Type::kVarBegin, tag);
    size_t p = after;
    int depth = 0;
    while (true) {
      p = skip_ws(p);
      if (p >= src_.size()) {
        return error_at(tag, is_block ? "unterminated tag `{%`" : "unterminated `{{`");
      }
      if (depth == 0) {
        char sign = 0;
        size_t end = std::string::npos;
        if (is_block) {
          end = block_end_at(p, &sign);
        } else if (src_.compare(p, 3, "-}}") == 0) {
          sign = '-';
          end = p + 3;
        } else if (src_.compare(p, 2, "}}") == 0) {
          end = p + 2;
        }
        if (end != std::string::npos) {
          push(is_block ? Token::Type::kBlockEnd : Token::Type::kVarEnd, p);
          pos_ = end;
          after_end(sign == '-', is_block && sign == 0);
          return {};
        }
      }
      TESSERA_ASSIGN_OR_RETURN(p, lex_expr_token(p, &depth));
    }
  }

  Result<size_t> lex_expr_token(size_t p, int* depth) {
    char c = src_[p];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t e = p;
      while (e < src_.size() &&
             (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_'))
        ++e;
      push(Token::Type::kName, p, src_.substr(p, e - p));
      return e;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return lex_number(p);
    if (c == '\'' || c == '"') return lex_string(p);
    static const char* kTwo[] = {"**", "//", "==", "!=", ">=", "<="};
    for (const char* op : kTwo) {
      if (src_.compare(p, 2, op) == 0) {
        push(Token::Type::kOp, p, op);
        return p + 2;
      }
    }
    static const std::string kOne = "+-*/%~<>()[]{},.:|=";
    if (kOne.find(c) == std::string::npos) {
      return error_at(p, std::string("unexpected character '") + c + "'");
    }
    if (c == '(' || c == '[' || c == '{') ++*depth;
    if ((c == ')' || c == ']' || c == '}') && *depth > 0) --*depth;
    push(Token::Type::kOp, p, std::string(1, c));
    return p + 1;
  }

  Result<size_t> lex_number(size_t p) {
    size_t e = p;
    auto digits = [&] {
      while (e < src_.size() &&
             (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_'))
        ++e;
    };
    digits();
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      is_float = true;
      ++e;
      digits();
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t q = e + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) {
        is_float = true;
        e = q;
        digits();
      }
    }
    std::string text;
    for (size_t i = p; i < e; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    Token t;
    position(p, t);
    errno = 0;
    if (is_float) {
      t.type = Token::Type::kFloat;
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      t.type = Token::Type::kInt;
      t.int_value = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) return error_at(p, "integer literal out of range");
    }
    t.text = text;
    tokens_.push_back(std::move(t));
    return e;
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp > 0x10FFFF) cp = 0xFFFD;
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // Python string-literal escapes (what Jinja's unicode-escape decoding accepts).
  Result<size_t> lex_string(size_t p) {
    char quote = src_[p];
    std::string out;
    size_t i = p + 1;
    while (true) {
      if (i >= src_.size()) return error_at(p, "unterminated string literal");
      char c = src_[i];
      if (c == quote) break;
      if (c != '\\' || i + 1 >= src_.size()) {
        out += c;
        ++i;
        continue;
      }
      char e = src_[i + 1];
      i += 2;
      auto hex = [&](int n) -> int64_t {
        if (i + n > src_.size()) return -1;
        int64_t v = 0;
        for (int k = 0; k < n; ++k) {
          char h = src_[i + k];
          if (!std::isxdigit(static_cast<unsigned char>(h))) return -1;
          v = v * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                                                                    : (std::tolower(h) - 'a' + 10));
        }
        i += n;
        return v;
      };
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '\n':
          break;
        case 'x':
        case 'u':
        case 'U': {
          int64_t v = hex(e == 'x' ? 2 : e == 'u' ? 4 : 8);
          if (v < 0) return error_at(p, "malformed \\x/\\u escape in string literal");
          append_utf8(out, static_cast<uint32_t>(v));
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k) {
              v = v * 8 + static_cast<uint32_t>(src_[i++] - '0');
            }
            append_utf8(out, v);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    push(Token::Type::kString, p, std::move(out));
    return i + 1;
  }

  std::string src_;
  size_t pos_ = 0;
  std::vector<Token> tokens_;
  size_t line_pos_ = 0;
  int line_ = 1;
  int column_ = 1;
};

}  // namespace

Result<std::vector<Token>> lex_template(std::string_view source) {
  // As Jinja: newlines normalised to "\n" and one trailing newline dropped.
  std::string src;
  src.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      src += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      src += source[i];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  return Lexer(std::move(src)).run();
}

}  // namespace tessera::text::jinja

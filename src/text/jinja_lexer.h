// Jinja-subset lexer: splits a template into text and tag tokens, applying whitespace control
// exactly as Jinja does with trim_blocks=True and lstrip_blocks=True (transformers' settings).
// Invariant: text tokens hold the final output bytes; tags hold expression tokens.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/core/status.h"

namespace tessera::text::jinja {

struct Token {
  enum class Type {
    kText,
    kVarBegin,
    kVarEnd,
    kBlockBegin,
    kBlockEnd,
    kName,
    kString,
    kInt,
    kFloat,
    kOp,
    kEof
  };
  Type type = Type::kEof;
  std::string text;  // text, name, decoded string, operator
  int64_t int_value = 0;
  double float_value = 0.0;
  int line = 1;
  int column = 1;
};

Result<std::vector<Token>> lex_template(std::string_view source);

}  // namespace tessera::text::jinja

// The parsed form of a Jinja-subset template: expression and statement nodes, and the parser
// entry point. Invariant: a Template is immutable once parsed and every node knows the line and
// column it came from, so run-time errors can point into the source.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/text/jinja_value.h"
#include "tessera/core/status.h"

namespace tessera::text::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,  // value
    kName,     // name
    kList,     // args (tuple when is_tuple)
    kDict,     // kwargs-like pairs in `pairs`
    kAttr,     // a.name
    kItem,     // a[b]
    kSlice,    // a[b:c:d]; absent parts are null
    kCall,     // a(args, kwargs)
    kFilter,   // a | name(args, kwargs)
    kTest,     // a is [not] name(args)
    kUnary,    // op a ("-", "+", "not")
    kBinary,   // a op b (+ - * / // % ** ~)
    kCompare,  // args[0] ops[0] args[1] ops[1] args[2]... (Python chained comparison)
    kAnd,
    kOr,
    kCond,  // a if b else c (c may be null)
  };
  Kind kind = Kind::kLiteral;
  int line = 0;
  int column = 0;
  Value value;           // kLiteral
  std::string name;      // kName, kAttr, kFilter, kTest, operator for kUnary/kBinary
  bool negated = false;  // kTest `is not`
  bool is_tuple = false;
  ExprPtr a, b, c, d;
  std::vector<ExprPtr> args;
  std::vector<std::string> ops;  // kCompare: ==, !=, <, <=, >, >=, in, "not in"
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::pair<ExprPtr, ExprPtr>> pairs;  // kDict
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches (cond null = else)
    kFor,       // targets in expr [if cond]: body [else else_body]
    kSet,       // targets = expr, or ns.attr = expr (attr non-empty)
    kSetBlock,  // {% set name %}body{% endset %}
    kMacro,     // name(params) body
    kBreak,
    kContinue,
    kFilterBlock,  // {% filter name(args) %}body{% endfilter %}: filter expr with null input
    kScope,        // {% generation %} and similar: body rendered in place
  };
  Kind kind = Kind::kText;
  int line = 0;
  int column = 0;
  std::string text;                  // kText; macro name; set-block name
  std::string attr;                  // kSet namespace attribute
  std::vector<std::string> targets;  // kFor / kSet names
  ExprPtr expr;                      // output / set value / for iterable / filter
  ExprPtr cond;                      // for-loop filter
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters, default may be null
};

struct Template {
  Body body;
};

struct ParseOptions {
  int max_depth = 200;
};

// Lexes (trim_blocks + lstrip_blocks, as transformers configures Jinja) and parses `source`.
Result<std::shared_ptr<const Template>> parse_template(std::string_view source,
                                                       const ParseOptions& options);

}  // namespace tessera::text::jinja

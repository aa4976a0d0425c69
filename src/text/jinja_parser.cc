// Recursive-descent parser for the Jinja subset, with Jinja's operator precedence:
// cond-expr < or < and < not < compare/in < + - < ~ < * / // % < ** < unary < postfix/filters.
// Invariant: nesting deeper than ParseOptions::max_depth is a syntax error, never a stack
// overflow; unsupported tags (include, import, extends...) are rejected by name.
#include <set>

#include "src/text/jinja_ast.h"
#include "src/text/jinja_lexer.h"

namespace tessera::text::jinja {
namespace {

using T = Token::Type;

class Parser {
 public:
  Parser(std::vector<Token> tokens, const ParseOptions& options)
      : toks_(std::move(tokens)), options_(options) {}

  Result<std::shared_ptr<const Template>> run() {
    auto tpl = std::make_shared<Template>();
    std::string stop;
    TESSERA_RETURN_IF_ERROR(parse_body(tpl->body, {}, &stop));
    return std::shared_ptr<const Template>(std::move(tpl));
  }

 private:
  const Token& peek(size_t ahead = 0) const {
    size_t i = std::min(pos_ + ahead, toks_.size() - 1);
    return toks_[i];
  }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  bool is_op(const char* op, size_t ahead = 0) const {
    return peek(ahead).type == T::kOp && peek(ahead).text == op;
  }
  bool is_name(const char* name, size_t ahead = 0) const {
    return peek(ahead).type == T::kName && peek(ahead).text == name;
  }

  Status error(const Token& t, const std::string& what) const {
    return invalid_argument("chat template syntax error at line {}, column {}: {}", t.line,
                            t.column, what);
  }
  Status expect_op(const char* op) {
    if (!is_op(op)) return error(peek(), std::string("expected '") + op + "'" + found());
    next();
    return {};
  }
  Status expect_block_end() {
    if (peek().type != T::kBlockEnd) return error(peek(), "expected '%}'" + found());
    next();
    return {};
  }
  std::string found() const {
    const Token& t = peek();
    switch (t.type) {
      case T::kEof:
        return ", found end of template";
      case T::kBlockEnd:
        return ", found '%}'";
      case T::kVarEnd:
        return ", found '}}'";
      default:
        return ", found '" + t.text + "'";
    }
  }
  Result<std::string> expect_name() {
    if (peek().type != T::kName) return error(peek(), "expected a name" + found());
    return next().text;
  }

  // Depth guard shared by statements and expressions.
  struct DepthGuard {
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
    int& depth;
  };
  Status check_depth() const {
    if (depth_ > options_.max_depth) {
      return error(peek(), "template nests deeper than " + std::to_string(options_.max_depth));
    }
    return {};
  }

  // Parses statements until a block tag whose name is in `stops` (left unconsumed: `*stop` gets
  // its name and the parser stands after its name token) or the end of the template.
  Status parse_body(Body& body, const std::set<std::string>& stops, std::string* stop) {
    DepthGuard guard(depth_);
    TESSERA_RETURN_IF_ERROR(check_depth());
    while (true) {
      const Token& t = peek();
      if (t.type == T::kEof) {
        if (!stops.empty()) {
          std::string names;
          for (const auto& n : stops) names += (names.empty() ? "'" : ", '") + n + "'";
          return error(t, "unexpected end of template, expected " + names);
        }
        *stop = "";
        return {};
      }
      if (t.type == T::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->line = t.line;
        s->column = t.column;
        s->text = next().text;
        body.push_back(std::move(s));
        continue;
      }
      if (t.type == T::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = t.line;
        s->column = t.column;
        next();
        TESSERA_ASSIGN_OR_RETURN(s->expr, parse_tuple_or_expr());
        if (peek().type != T::kVarEnd) return error(peek(), "expected '}}'" + found());
        next();
        body.push_back(std::move(s));
        continue;
      }
      if (t.type != T::kBlockBegin) return error(t, "unexpected token" + found());
      const Token& name_tok = peek(1);
      if (name_tok.type != T::kName) return error(name_tok, "expected a tag name" + found());
      if (stops.count(name_tok.text)) {
        next();
        next();
        *stop = name_tok.text;
        return {};
      }
      next();
      TESSERA_RETURN_IF_ERROR(parse_statement(body));
    }
  }

  Status parse_statement(Body& body) {
    const Token& tag = next();
    const std::string& name = tag.text;
    auto s = std::make_unique<Stmt>();
    s->line = tag.line;
    s->column = tag.column;
    std::string stop;
    if (name == "if") {
      s->kind = Stmt::Kind::kIf;
      ExprPtr cond;
      TESSERA_ASSIGN_OR_RETURN(cond, parse_expr());
      while (true) {
        TESSERA_RETURN_IF_ERROR(expect_block_end());
        Body branch;
        TESSERA_RETURN_IF_ERROR(parse_body(branch, {"elif", "else", "endif"}, &stop));
        s->branches.emplace_back(std::move(cond), std::move(branch));
        if (stop == "endif") break;
        if (stop == "else") {
          TESSERA_RETURN_IF_ERROR(expect_block_end());
          Body else_branch;
          TESSERA_RETURN_IF_ERROR(parse_body(else_branch, {"endif"}, &stop));
          s->branches.emplace_back(nullptr, std::move(else_branch));
          break;
        }
        TESSERA_ASSIGN_OR_RETURN(cond, parse_expr());
      }
    } else if (name == "for") {
      s->kind = Stmt::Kind::kFor;
      TESSERA_RETURN_IF_ERROR(parse_targets(s->targets));
      if (!is_name("in")) return error(peek(), "expected 'in' in for loop" + found());
      next();
      TESSERA_ASSIGN_OR_RETURN(s->expr, parse_cond_free());
      if (is_name("if")) {
        next();
        TESSERA_ASSIGN_OR_RETURN(s->cond, parse_cond_free());
      }
      if (is_name("recursive")) return error(peek(), "recursive for loops are not supported");
      TESSERA_RETURN_IF_ERROR(expect_block_end());
      TESSERA_RETURN_IF_ERROR(parse_body(s->body, {"else", "endfor"}, &stop));
      if (stop == "else") {
        TESSERA_RETURN_IF_ERROR(expect_block_end());
        TESSERA_RETURN_IF_ERROR(parse_body(s->else_body, {"endfor"}, &stop));
      }
    } else if (name == "set") {
      TESSERA_RETURN_IF_ERROR(parse_set(*s, stop));
    } else if (name == "macro") {
      s->kind = Stmt::Kind::kMacro;
      TESSERA_ASSIGN_OR_RETURN(s->text, expect_name());
      TESSERA_RETURN_IF_ERROR(expect_op("("));
      while (!is_op(")")) {
        std::string param;
        TESSERA_ASSIGN_OR_RETURN(param, expect_name());
        ExprPtr def;
        if (is_op("=")) {
          next();
          TESSERA_ASSIGN_OR_RETURN(def, parse_expr());
        }
        s->params.emplace_back(param, std::move(def));
        if (!is_op(",")) break;
        next();
      }
      TESSERA_RETURN_IF_ERROR(expect_op(")"));
      TESSERA_RETURN_IF_ERROR(expect_block_end());
      TESSERA_RETURN_IF_ERROR(parse_body(s->body, {"endmacro"}, &stop));
    } else if (name == "break" || name == "continue") {
      s->kind = name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
    } else if (name == "filter") {
      s->kind = Stmt::Kind::kFilterBlock;
      TESSERA_ASSIGN_OR_RETURN(s->expr, parse_filter_chain(nullptr));
      TESSERA_RETURN_IF_ERROR(expect_block_end());
      TESSERA_RETURN_IF_ERROR(parse_body(s->body, {"endfilter"}, &stop));
    } else if (name == "generation") {
      s->kind = Stmt::Kind::kScope;
      TESSERA_RETURN_IF_ERROR(expect_block_end());
      TESSERA_RETURN_IF_ERROR(parse_body(s->body, {"endgeneration"}, &stop));
    } else if (name == "include" || name == "import" || name == "from" || name == "extends" ||
               name == "block") {
      return error(tag, "'" + name + "' is not allowed in a chat template (no file access)");
    } else {
      return error(tag, "unknown or unsupported tag '" + name + "'");
    }
    TESSERA_RETURN_IF_ERROR(expect_block_end());
    body.push_back(std::move(s));
    return {};
  }

  Status parse_set(Stmt& s, std::string& stop) {
    s.kind = Stmt::Kind::kSet;
    TESSERA_RETURN_IF_ERROR(parse_targets(s.targets));
    if (s.targets.size() == 1 && is_op(".")) {
      next();
      TESSERA_ASSIGN_OR_RETURN(s.attr, expect_name());
    }
    if (is_op("=")) {
      next();
      TESSERA_ASSIGN_OR_RETURN(s.expr, parse_tuple_or_expr());
      return {};
    }
    if (s.targets.size() != 1 || !s.attr.empty()) {
      return error(peek(), "expected '=' in set" + found());
    }
    s.kind = Stmt::Kind::kSetBlock;
    s.text = s.targets[0];
    TESSERA_RETURN_IF_ERROR(expect_block_end());
    TESSERA_RETURN_IF_ERROR(parse_body(s.body, {"endset"}, &stop));
    return {};
  }

  Status parse_targets(std::vector<std::string>& out) {
    bool paren = is_op("(");
    if (paren) next();
    while (true) {
      std::string n;
      TESSERA_ASSIGN_OR_RETURN(n, expect_name());
      out.push_back(n);
      if (!is_op(",")) break;
      next();
    }
    if (paren) TESSERA_RETURN_IF_ERROR(expect_op(")"));
    return {};
  }

  ExprPtr make(Expr::Kind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }

  // `a, b` at the top of {{ }} or set builds a tuple.
  Result<ExprPtr> parse_tuple_or_expr() {
    const Token& start = peek();
    TESSERA_ASSIGN_OR_RETURN(ExprPtr first, parse_expr());
    if (!is_op(",")) return first;
    auto tuple = make(Expr::Kind::kList, start);
    tuple->is_tuple = true;
    tuple->args.push_back(std::move(first));
    while (is_op(",")) {
      next();
      if (peek().type == T::kVarEnd || peek().type == T::kBlockEnd) break;
      TESSERA_ASSIGN_OR_RETURN(ExprPtr e, parse_expr());
      tuple->args.push_back(std::move(e));
    }
    return tuple;
  }

  Result<ExprPtr> parse_expr() {
    DepthGuard guard(depth_);
    TESSERA_RETURN_IF_ERROR(check_depth());
    const Token& start = peek();
    TESSERA_ASSIGN_OR_RETURN(ExprPtr value, parse_or());
    while (is_name("if")) {
      next();
      auto cond = make(Expr::Kind::kCond, start);
      cond->a = std::move(value);
      TESSERA_ASSIGN_OR_RETURN(cond->b, parse_or());
      if (is_name("else")) {
        next();
        TESSERA_ASSIGN_OR_RETURN(cond->c, parse_expr());
      }
      value = std::move(cond);
    }
    return value;
  }

  // An expression without a trailing `x if c` (for-loop iterables and filters).
  Result<ExprPtr> parse_cond_free() { return parse_or(); }

  Result<ExprPtr> parse_or() {
    TESSERA_ASSIGN_OR_RETURN(ExprPtr left, parse_and());
    while (is_name("or")) {
      auto e = make(Expr::Kind::kOr, next());
      e->a = std::move(left);
      TESSERA_ASSIGN_OR_RETURN(e->b, parse_and());
      left = std::move(e);
    }
    return left;
  }

  Result<ExprPtr> parse_and() {
    TESSERA_ASSIGN_OR_RETURN(ExprPtr left, parse_not());
    while (is_name("and")) {
      auto e = make(Expr::Kind::kAnd, next());
      e->a = std::move(left);
      TESSERA_ASSIGN_OR_RETURN(e->b, parse_not());
      left = std::move(e);
    }
    return left;
  }

  Result<ExprPtr> parse_not() {
    if (is_name("not")) {
      DepthGuard guard(depth_);
      TESSERA_RETURN_IF_ERROR(check_depth());
      auto e = make(Expr::Kind::kUnary, next());
      e->name = "not";
      TESSERA_ASSIGN_OR_RETURN(e->a, parse_not());
      return e;
    }
    return parse_compare();
  }

  Result<ExprPtr> parse_compare() {
    const Token& start = peek();
    TESSERA_ASSIGN_OR_RETURN(ExprPtr left, parse_math1());
    ExprPtr chain;
    while (true) {
      std::string op;
      const Token& at = peek();
      if (at.type == T::kOp && (at.text == "==" || at.text == "!=" || at.text == "<" ||
                                at.text == "<=" || at.text == ">" || at.text == ">=")) {
        op = at.text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && is_name("in", 1)) {
        op = "not in";
        next();
        next();
      } else {
        return chain ? std::move(chain) : std::move(left);
      }
      if (!chain) {
        chain = make(Expr::Kind::kCompare, start);
        chain->args.push_back(std::move(left));
      }
      chain->ops.push_back(op);
      TESSERA_ASSIGN_OR_RETURN(ExprPtr right, parse_math1());
      chain->args.push_back(std::move(right));
    }
  }

  Result<ExprPtr> parse_binary_level(int level) {
    static const std::vector<std::vector<std::string>> kLevels = {
        {"+", "-"}, {"~"}, {"*", "/", "//", "%"}, {"**"}};
    if (level == static_cast<int>(kLevels.size())) return parse_unary();
    TESSERA_ASSIGN_OR_RETURN(ExprPtr left, parse_binary_level(level + 1));
    while (peek().type == T::kOp) {
      const std::string& t = peek().text;
      bool match = false;
      for (const auto& op : kLevels[static_cast<size_t>(level)]) match = match || op == t;
      if (!match) break;
      auto e = make(Expr::Kind::kBinary, peek());
      e->name = next().text;
      e->a = std::move(left);
      TESSERA_ASSIGN_OR_RETURN(e->b, parse_binary_level(level + 1));
      left = std::move(e);
    }
    return left;
  }
  Result<ExprPtr> parse_math1() { return parse_binary_level(0); }

  Result<ExprPtr> parse_unary() {
    DepthGuard guard(depth_);
    TESSERA_RETURN_IF_ERROR(check_depth());
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      node = make(Expr::Kind::kUnary, peek());
      node->name = next().text;
      TESSERA_ASSIGN_OR_RETURN(node->a, parse_unary_no_filter());
    } else {
      TESSERA_ASSIGN_OR_RETURN(node, parse_primary());
      TESSERA_ASSIGN_OR_RETURN(node, parse_postfix(std::move(node)));
    }
    return parse_filter_chain(std::move(node));
  }

  Result<ExprPtr> parse_unary_no_filter() {
    DepthGuard guard(depth_);
    TESSERA_RETURN_IF_ERROR(check_depth());
    if (is_op("-") || is_op("+")) {
      auto node = make(Expr::Kind::kUnary, peek());
      node->name = next().text;
      TESSERA_ASSIGN_OR_RETURN(node->a, parse_unary_no_filter());
      return node;
    }
    TESSERA_ASSIGN_OR_RETURN(ExprPtr node, parse_primary());
    return parse_postfix(std::move(node));
  }

  // Filters (`| name(args)`) and tests (`is [not] name args`); `input` null for filter blocks.
  Result<ExprPtr> parse_filter_chain(ExprPtr input) {
    bool first_bare = input == nullptr;
    while (first_bare || is_op("|") || is_name("is")) {
      if (first_bare || is_op("|")) {
        if (!first_bare) next();
        first_bare = false;
        auto f = make(Expr::Kind::kFilter, peek());
        TESSERA_ASSIGN_OR_RETURN(f->name, expect_name());
        f->a = std::move(input);
        if (is_op("(")) TESSERA_RETURN_IF_ERROR(parse_call_args(*f));
        input = std::move(f);
      } else {
        auto t = make(Expr::Kind::kTest, next());
        if (is_name("not")) {
          next();
          t->negated = true;
        }
        TESSERA_ASSIGN_OR_RETURN(t->name, expect_name());
        t->a = std::move(input);
        if (is_op("(")) {
          TESSERA_RETURN_IF_ERROR(parse_call_args(*t));
        } else if (starts_test_arg()) {
          TESSERA_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
          TESSERA_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
          t->args.push_back(std::move(arg));
        }
        input = std::move(t);
      }
    }
    return input;
  }

  bool starts_test_arg() const {
    const Token& t = peek();
    if (t.type == T::kString || t.type == T::kInt || t.type == T::kFloat) return true;
    if (t.type == T::kOp) return t.text == "[" || t.text == "{";
    if (t.type != T::kName) return false;
    static const std::set<std::string> kStop = {"else", "or", "and", "is", "in", "not", "if"};
    return !kStop.count(t.text);
  }

  Status parse_call_args(Expr& e) {
    TESSERA_RETURN_IF_ERROR(expect_op("("));
    while (!is_op(")")) {
      if (peek().type == T::kName && is_op("=", 1)) {
        std::string key = next().text;
        next();
        TESSERA_ASSIGN_OR_RETURN(ExprPtr v, parse_expr());
        e.kwargs.emplace_back(key, std::move(v));
      } else {
        if (!e.kwargs.empty()) return error(peek(), "positional argument after keyword argument");
        TESSERA_ASSIGN_OR_RETURN(ExprPtr v, parse_expr());
        e.args.push_back(std::move(v));
      }
      if (!is_op(",")) break;
      next();
    }
    return expect_op(")");
  }

  Result<ExprPtr> parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".")) {
        const Token& at = next();
        auto e = make(Expr::Kind::kAttr, at);
        if (peek().type == T::kName) {
          e->name = next().text;
        } else if (peek().type == T::kInt) {
          e->kind = Expr::Kind::kItem;
          e->b = make(Expr::Kind::kLiteral, peek());
          e->b->value = Value::integer(next().int_value);
        } else {
          return error(peek(), "expected an attribute name after '.'" + found());
        }
        e->a = std::move(node);
        node = std::move(e);
      } else if (is_op("[")) {
        TESSERA_ASSIGN_OR_RETURN(node, parse_subscript(std::move(node)));
      } else if (is_op("(")) {
        auto e = make(Expr::Kind::kCall, peek());
        e->a = std::move(node);
        TESSERA_RETURN_IF_ERROR(parse_call_args(*e));
        node = std::move(e);
      } else {
        return node;
      }
    }
  }

  Result<ExprPtr> parse_subscript(ExprPtr node) {
    auto e = make(Expr::Kind::kItem, next());
    e->a = std::move(node);
    ExprPtr parts[3];
    int index = 0;
    bool is_slice = false;
    while (true) {
      if (is_op(":")) {
        next();
        is_slice = true;
        if (++index > 2) return error(peek(), "too many ':' in slice");
        continue;
      }
      if (is_op("]")) break;
      if (parts[index]) return error(peek(), "expected ']'" + found());
      TESSERA_ASSIGN_OR_RETURN(parts[index], parse_expr());
    }
    next();
    if (is_slice) {
      e->kind = Expr::Kind::kSlice;
      e->b = std::move(parts[0]);
      e->c = std::move(parts[1]);
      e->d = std::move(parts[2]);
    } else {
      if (!parts[0]) return error(peek(), "empty subscript");
      e->b = std::move(parts[0]);
    }
    return e;
  }

  Result<ExprPtr> parse_primary() {
    DepthGuard guard(depth_);
    TESSERA_RETURN_IF_ERROR(check_depth());
    const Token& t = peek();
    switch (t.type) {
      case T::kName: {
        next();
        auto e = make(Expr::Kind::kLiteral, t);
        if (t.text == "true" || t.text == "True") {
          e->value = Value::boolean(true);
        } else if (t.text == "false" || t.text == "False") {
          e->value = Value::boolean(false);
        } else if (t.text == "none" || t.text == "None") {
          e->value = Value::none();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = t.text;
        }
        return e;
      }
      case T::kString: {
        auto e = make(Expr::Kind::kLiteral, t);
        std::string s = next().text;
        while (peek().type == T::kString) s += next().text;  // adjacent literals join
        e->value = Value::string(std::move(s));
        return e;
      }
      case T::kInt:
      case T::kFloat: {
        auto e = make(Expr::Kind::kLiteral, t);
        e->value = t.type == T::kInt ? Value::integer(t.int_value) : Value::number(t.float_value);
        next();
        return e;
      }
      case T::kOp:
        if (t.text == "(") return parse_paren();
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default:
        break;
    }
    return error(t, "unexpected token in expression" + found());
  }

  Result<ExprPtr> parse_paren() {
    auto tuple = make(Expr::Kind::kList, next());
    tuple->is_tuple = true;
    bool saw_comma = false;
    while (!is_op(")")) {
      TESSERA_ASSIGN_OR_RETURN(ExprPtr e, parse_expr());
      tuple->args.push_back(std::move(e));
      if (!is_op(",")) break;
      saw_comma = true;
      next();
    }
    TESSERA_RETURN_IF_ERROR(expect_op(")"));
    if (tuple->args.size() == 1 && !saw_comma) return std::move(tuple->args[0]);
    return tuple;
  }

  Result<ExprPtr> parse_list() {
    auto list = make(Expr::Kind::kList, next());
    while (!is_op("]")) {
      TESSERA_ASSIGN_OR_RETURN(ExprPtr e, parse_expr());
      list->args.push_back(std::move(e));
      if (!is_op(",")) break;
      next();
    }
    TESSERA_RETURN_IF_ERROR(expect_op("]"));
    return list;
  }

  Result<ExprPtr> parse_dict() {
    auto dict = make(Expr::Kind::kDict, next());
    while (!is_op("}")) {
      TESSERA_ASSIGN_OR_RETURN(ExprPtr k, parse_expr());
      TESSERA_RETURN_IF_ERROR(expect_op(":"));
      TESSERA_ASSIGN_OR_RETURN(ExprPtr v, parse_expr());
      dict->pairs.emplace_back(std::move(k), std::move(v));
      if (!is_op(",")) break;
      next();
    }
    TESSERA_RETURN_IF_ERROR(expect_op("}"));
    return dict;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  ParseOptions options_;
};

}  // namespace

Result<std::shared_ptr<const Template>> parse_template(std::string_view source,
                                                       const ParseOptions& options) {
  TESSERA_ASSIGN_OR_RETURN(std::vector<Token> tokens, lex_template(source));
  return Parser(std::move(tokens), options).run();
}

}  // namespace tessera::text::jinja

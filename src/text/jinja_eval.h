// The Jinja-subset evaluator: renders a parsed Template against a dict of globals, and the
// builtin filters, tests and methods it dispatches to (jinja_builtins.cc).
// Invariant: every render is bounded by ChatTemplateLimits (steps, loop iterations, output and
// string bytes, call depth); reaching a bound is a kResourceExhausted Status, never a hang.
#pragma once

#include <optional>
#include <string>

#include "src/text/jinja_ast.h"
#include "src/text/jinja_value.h"
#include "tessera/text/chat_template.h"

namespace tessera::text::jinja {

// Renders `tpl` with `globals` (messages, tools, bos_token, ... as the caller provides them).
Result<std::string> render_template(const Template& tpl, const Dict& globals,
                                    const ChatTemplateLimits& limits);

// Builtins. Errors carry a message only; the evaluator adds the source position.
class Builtins {
 public:
  explicit Builtins(const ChatTemplateLimits& limits) : limits_(limits) {}

  Result<Value> filter(const std::string& name, const Value& input, const CallArgs& args) const;
  Result<bool> test(const std::string& name, const Value& input, const CallArgs& args) const;
  // Method call on a string, list or dict (`s.strip()`, `d.get(k)`); nullopt if `name` is not
  // a method of that type (then it is looked up as an item).
  std::optional<Result<Value>> method(const Value& object, const std::string& name,
                                      const CallArgs& args) const;
  // Whether `obj.name` names a method (Jinja's getattr tries attributes before items).
  static bool is_method(const Value& object, const std::string& name);
  // Items a for loop visits: lists as is, dict keys, string code points; error otherwise.
  Result<List> iterate(const Value& v) const;
  Status check_string(const std::string& s) const;

 private:
  Result<Value> select(const Value& input, const CallArgs& args, bool by_attr, bool keep) const;
  Result<Value> map(const Value& input, const CallArgs& args) const;

  ChatTemplateLimits limits_;
};

// Python-style comparison for <, <=, >, >=; error for unorderable types.
Result<int> compare_values(const Value& a, const Value& b);
// `a.attr` / `a[key]` per Jinja's rules on plain data (undefined where absent).
Value get_item(const Value& obj, const Value& key);
// Subscript path as `map(attribute="a.b")` uses it.
Value get_attribute_path(const Value& obj, const std::string& path);

}  // namespace tessera::text::jinja

// Values of the Jinja-subset interpreter: Python-like scalars, lists, insertion-ordered dicts,
// namespaces and callables, with Python's printing (str/repr) and json.dumps formatting.
// Invariant: lists and dicts are shared by reference like Python objects; only namespaces are
// ever mutated after construction (the sandbox is immutable, as transformers' is).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "tessera/core/status.h"

namespace tessera::text::jinja {

class Value;
using List = std::vector<Value>;

class Dict;
struct CallArgs;

using NativeFn = std::function<Result<Value>(const CallArgs&)>;

enum class Kind {
  kUndefined,
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kList,
  kDict,
  kNamespace,
  kCallable
};

class Value {
 public:
  Value() = default;  // undefined
  static Value undefined(std::string name = "") {
    Value v;
    v.str_ = std::move(name);
    return v;
  }
  static Value none() { return with_kind(Kind::kNone); }
  static Value boolean(bool b) {
    Value v = with_kind(Kind::kBool);
    v.int_ = b;
    return v;
  }
  static Value integer(int64_t i) {
    Value v = with_kind(Kind::kInt);
    v.int_ = i;
    return v;
  }
  static Value number(double d) {
    Value v = with_kind(Kind::kFloat);
    v.float_ = d;
    return v;
  }
  static Value string(std::string s) {
    Value v = with_kind(Kind::kString);
    v.str_ = std::move(s);
    return v;
  }
  static Value list(List items, bool is_tuple = false) {
    Value v = with_kind(Kind::kList);
    for (const Value& e : items) v.depth_ = std::max(v.depth_, e.depth_ + 1);
    v.list_ = std::make_shared<List>(std::move(items));
    v.int_ = is_tuple;
    return v;
  }
  static Value dict(Dict d);
  static Value namespace_object(Dict d);
  static Value callable(std::string name, NativeFn fn) {
    Value v = with_kind(Kind::kCallable);
    v.str_ = std::move(name);
    v.fn_ = std::make_shared<NativeFn>(std::move(fn));
    return v;
  }
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && int_ != 0; }
  bool is_mapping() const { return kind_ == Kind::kDict || kind_ == Kind::kNamespace; }

  bool as_bool() const { return int_ != 0; }
  int64_t as_int() const { return int_; }  // kInt and kBool
  double as_double() const { return kind_ == Kind::kFloat ? float_ : static_cast<double>(int_); }
  const std::string& as_string() const { return str_; }  // string, callable name, undefined name
  const List& as_list() const { return *list_; }
  const Dict& as_dict() const { return *dict_; }
  Dict& mutable_namespace() const { return *dict_; }
  const NativeFn& as_callable() const { return *fn_; }

  bool truthy() const;
  std::string type_name() const;  // Python's, for error messages ("dict object", "str"...)
  // Container nesting (0 for scalars and namespaces), bounded by the evaluator so that printing,
  // comparing and serialising never recurse without limit.
  int depth() const { return depth_; }

 private:
  static Value with_kind(Kind k) {
    Value v;
    v.kind_ = k;
    return v;
  }

  Kind kind_ = Kind::kUndefined;
  int depth_ = 0;
  int64_t int_ = 0;
  double float_ = 0.0;
  std::string str_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<NativeFn> fn_;
};

// Insertion-ordered string-keyed map (Python dict semantics for the keys templates use).
class Dict {
 public:
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value value);
  const std::vector<std::pair<std::string, Value>>& items() const { return items_; }
  size_t size() const { return items_.size(); }
  void clear() { items_.clear(); }

 private:
  std::vector<std::pair<std::string, Value>> items_;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  const Value* get(size_t index, const char* name) const;  // positional or keyword, else null
};

// Python str(v) as Jinja prints it ("None", "True", "[1, 'a']"); undefined prints as "".
std::string to_str(const Value& v);
// Python repr(v).
std::string to_repr(const Value& v);
// Python float repr ("1.0", "0.1", "1e-05", "1e+20", "inf", "nan").
std::string float_repr(double d);
// json.dumps options; the defaults are transformers' tojson (ensure_ascii=False, no indent).
struct JsonOptions {
  int indent = -1;  // <0: None (one line)
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::string item_separator;  // empty: ", " without indent, "," with
  std::string key_separator = ": ";
};
Result<std::string> to_json(const Value& v, const JsonOptions& options = {});
// Python ==, deep.
bool values_equal(const Value& a, const Value& b);

// UTF-8 as code points (Python str indexing); invalid bytes become one unit each.
std::vector<std::string> utf8_units(const std::string& s);

}  // namespace tessera::text::jinja

// Builtin filters, tests and methods of the Jinja subset: Jinja's filters and tests that chat
// templates use, transformers' tojson, and the Python str/dict/list methods templates call.
// Invariant: builtins never mutate their inputs (the sandbox is immutable) and every string or
// list they build is checked against the sandbox limits.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <set>

#include "src/text/jinja_eval.h"

namespace tessera::text::jinja {
namespace {

bool is_ws_unit(const std::string& u) {
  return u.size() == 1 &&
         (u[0] == ' ' || u[0] == '\t' || u[0] == '\n' || u[0] == '\r' || u[0] == '\f' ||
          u[0] == '\v' || u[0] == '\x1c' || u[0] == '\x1d' || u[0] == '\x1e' || u[0] == '\x1f');
}

// Python str.strip/lstrip/rstrip; `chars` null strips whitespace.
std::string strip(const std::string& s, const Value* chars, bool left, bool right) {
  std::vector<std::string> units = utf8_units(s);
  std::set<std::string> set;
  bool ws = !chars || chars->is_none() || !chars->is_string();
  if (!ws) {
    for (auto& u : utf8_units(chars->as_string())) set.insert(u);
  }
  auto strip_unit = [&](const std::string& u) { return ws ? is_ws_unit(u) : set.count(u) > 0; };
  size_t b = 0;
  size_t e = units.size();
  if (left) {
    while (b < e && strip_unit(units[b])) ++b;
  }
  if (right) {
    while (e > b && strip_unit(units[e - 1])) --e;
  }
  std::string out;
  for (size_t i = b; i < e; ++i) out += units[i];
  return out;
}

std::string ascii_upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string ascii_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string capitalize(const std::string& s) {
  std::string out = ascii_lower(s);
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}
std::string title(const std::string& s) {
  std::string out = s;
  bool prev_letter = false;
  for (char& c : out) {
    bool letter = std::isalpha(static_cast<unsigned char>(c)) != 0;
    if (letter) {
      c = static_cast<char>(prev_letter ? std::tolower(static_cast<unsigned char>(c))
                                        : std::toupper(static_cast<unsigned char>(c)));
    }
    prev_letter = letter || std::isdigit(static_cast<unsigned char>(c)) || c == '\'';
  }
  return out;
}

Result<Value> split(const std::string& s, const Value* sep_v, const Value* max_v) {
  int64_t max_split = max_v && max_v->kind() == Kind::kInt ? max_v->as_int() : -1;
  List parts;
  if (!sep_v || sep_v->is_none()) {
    size_t i = 0;
    auto ws = [&](size_t k) { return std::isspace(static_cast<unsigned char>(s[k])) != 0; };
    while (true) {
      while (i < s.size() && ws(i)) ++i;
      if (i >= s.size()) break;
      if (max_split >= 0 && static_cast<int64_t>(parts.size()) == max_split) {
        size_t e = s.size();
        while (e > i && ws(e - 1)) --e;
        parts.push_back(Value::string(s.substr(i, e - i)));
        break;
      }
      size_t j = i;
      while (j < s.size() && !ws(j)) ++j;
      parts.push_back(Value::string(s.substr(i, j - i)));
      i = j;
    }
    return Value::list(std::move(parts));
  }
  if (!sep_v->is_string()) return invalid_argument("split() separator must be a string");
  const std::string& sep = sep_v->as_string();
  if (sep.empty()) return invalid_argument("split(): empty separator");
  size_t start = 0;
  while (true) {
    size_t hit = s.find(sep, start);
    if (hit == std::string::npos ||
        (max_split >= 0 && static_cast<int64_t>(parts.size()) == max_split)) {
      parts.push_back(Value::string(s.substr(start)));
      break;
    }
    parts.push_back(Value::string(s.substr(start, hit - start)));
    start = hit + sep.size();
  }
  return Value::list(std::move(parts));
}

std::string replace_all(const std::string& s, const std::string& old, const std::string& repl,
                        int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts `repl` around every code point.
    std::vector<std::string> units = utf8_units(s);
    int64_t done = 0;
    for (size_t i = 0; i <= units.size(); ++i) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
      }
      if (i < units.size()) out += units[i];
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t hit = s.find(old, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += repl;
    pos = hit + old.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

bool starts_or_ends(const std::string& s, const Value& arg, bool starts) {
  auto one = [&](const std::string& p) {
    if (p.size() > s.size()) return false;
    return starts ? s.compare(0, p.size(), p) == 0
                  : s.compare(s.size() - p.size(), p.size(), p) == 0;
  };
  if (arg.is_string()) return one(arg.as_string());
  if (arg.is_list()) {
    for (const Value& v : arg.as_list()) {
      if (v.is_string() && one(v.as_string())) return true;
    }
  }
  return false;
}

const std::set<std::string>& string_methods() {
  static const std::set<std::string> k = {
      "strip",   "lstrip",  "rstrip",       "split",        "rsplit",  "startswith", "endswith",
      "upper",   "lower",   "title",        "capitalize",   "replace", "find",       "rfind",
      "count",   "join",    "splitlines",   "isdigit",      "isalpha", "isspace",    "isalnum",
      "islower", "isupper", "removeprefix", "removesuffix", "index"};
  return k;
}
const std::set<std::string>& dict_methods() {
  static const std::set<std::string> k = {"get", "keys",    "values", "items",      "copy",
                                          "pop", "popitem", "update", "setdefault", "clear"};
  return k;
}
const std::set<std::string>& list_methods() {
  static const std::set<std::string> k = {"index", "count",  "copy", "append",  "extend", "insert",
                                          "pop",   "remove", "sort", "reverse", "clear"};
  return k;
}
const std::set<std::string>& unsafe_methods() {
  static const std::set<std::string> k = {"pop",    "popitem", "update", "setdefault",
                                          "clear",  "append",  "extend", "insert",
                                          "remove", "sort",    "reverse"};
  return k;
}

Result<Value> string_method(const std::string& s, const std::string& name, const CallArgs& a) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    return Value::string(strip(s, a.get(0, "chars"), name != "rstrip", name != "lstrip"));
  }
  if (name == "split") return split(s, a.get(0, "sep"), a.get(1, "maxsplit"));
  if (name == "rsplit") {
    const Value* max_v = a.get(1, "maxsplit");
    if (max_v && max_v->kind() == Kind::kInt && max_v->as_int() >= 0) {
      return invalid_argument("rsplit with maxsplit is not supported");
    }
    return split(s, a.get(0, "sep"), nullptr);
  }
  if (name == "startswith" || name == "endswith") {
    const Value* p = a.get(0, "prefix");
    if (!p) return invalid_argument("{}() takes one argument", name);
    return Value::boolean(starts_or_ends(s, *p, name == "startswith"));
  }
  if (name == "upper") return Value::string(ascii_upper(s));
  if (name == "lower") return Value::string(ascii_lower(s));
  if (name == "title") return Value::string(title(s));
  if (name == "capitalize") return Value::string(capitalize(s));
  const Value* arg0 = a.get(0, "x");
  auto need_str = [&]() -> Status {
    if (!arg0 || !arg0->is_string()) return invalid_argument("{}() needs a string argument", name);
    return {};
  };
  if (name == "replace") {
    const Value* repl = a.get(1, "new");
    const Value* count = a.get(2, "count");
    TESSERA_RETURN_IF_ERROR(need_str());
    if (!repl || !repl->is_string()) return invalid_argument("replace() needs two strings");
    return Value::string(replace_all(s, arg0->as_string(), repl->as_string(),
                                     count && count->kind() == Kind::kInt ? count->as_int() : -1));
  }
  if (name == "find" || name == "rfind" || name == "index") {
    TESSERA_RETURN_IF_ERROR(need_str());
    size_t hit = name == "rfind" ? s.rfind(arg0->as_string()) : s.find(arg0->as_string());
    if (hit == std::string::npos) {
      if (name == "index") return invalid_argument("substring not found");
      return Value::integer(-1);
    }
    return Value::integer(static_cast<int64_t>(utf8_units(s.substr(0, hit)).size()));
  }
  if (name == "count") {
    TESSERA_RETURN_IF_ERROR(need_str());
    if (arg0->as_string().empty())
      return Value::integer(static_cast<int64_t>(utf8_units(s).size()) + 1);
    int64_t n = 0;
    for (size_t p = s.find(arg0->as_string()); p != std::string::npos;
         p = s.find(arg0->as_string(), p + arg0->as_string().size())) {
      ++n;
    }
    return Value::integer(n);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    TESSERA_RETURN_IF_ERROR(need_str());
    const std::string& p = arg0->as_string();
    if (name == "removeprefix" && s.compare(0, p.size(), p) == 0)
      return Value::string(s.substr(p.size()));
    if (name == "removesuffix" && p.size() <= s.size() &&
        s.compare(s.size() - p.size(), p.size(), p) == 0) {
      return Value::string(s.substr(0, s.size() - p.size()));
    }
    return Value::string(s);
  }
  if (name == "join") {
    if (!arg0 || !arg0->is_list()) return invalid_argument("join() needs a list");
    std::string out;
    bool first = true;
    for (const Value& v : arg0->as_list()) {
      if (!v.is_string()) return invalid_argument("join(): sequence item is not a string");
      if (!first) out += s;
      first = false;
      out += v.as_string();
    }
    return Value::string(std::move(out));
  }
  if (name == "splitlines") {
    List lines;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\n' || s[i] == '\r') {
        lines.push_back(Value::string(s.substr(start, i - start)));
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
        start = i + 1;
      }
    }
    if (start < s.size()) lines.push_back(Value::string(s.substr(start)));
    return Value::list(std::move(lines));
  }
  auto all_of = [&](int (*pred)(int)) {
    if (s.empty()) return false;
    for (unsigned char c : s) {
      if (!pred(c)) return false;
    }
    return true;
  };
  if (name == "isdigit") return Value::boolean(all_of(std::isdigit));
  if (name == "isalpha") return Value::boolean(all_of(std::isalpha));
  if (name == "isspace") return Value::boolean(all_of(std::isspace));
  if (name == "isalnum") return Value::boolean(all_of(std::isalnum));
  if (name == "islower") return Value::boolean(ascii_lower(s) == s && ascii_upper(s) != s);
  if (name == "isupper") return Value::boolean(ascii_upper(s) == s && ascii_lower(s) != s);
  return invalid_argument("unknown string method '{}'", name);
}

List dict_items(const Dict& d) {
  List items;
  for (const auto& [k, v] : d.items()) items.push_back(Value::list({Value::string(k), v}, true));
  return items;
}

}  // namespace

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_mapping()) {
    if (key.is_string()) {
      if (const Value* v = obj.as_dict().find(key.as_string())) return *v;
    }
    return Value::undefined("'" + obj.type_name() + " object' has no attribute " + to_repr(key));
  }
  if ((obj.is_list() || obj.is_string()) &&
      (key.kind() == Kind::kInt || key.kind() == Kind::kBool)) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      int64_t n = static_cast<int64_t>(obj.as_list().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.as_list()[static_cast<size_t>(i)];
    } else {
      std::vector<std::string> units = utf8_units(obj.as_string());
      int64_t n = static_cast<int64_t>(units.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value::string(units[static_cast<size_t>(i)]);
    }
    return Value::undefined(obj.type_name() + " index out of range");
  }
  return Value::undefined("'" + obj.type_name() + " object' has no attribute " + to_repr(key));
}

Value get_attribute_path(const Value& obj, const std::string& path) {
  Value cur = obj;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c)) != 0;
    });
    cur = numeric && cur.is_list() ? get_item(cur, Value::integer(std::atoll(part.c_str())))
                                   : get_item(cur, Value::string(part));
    if (dot == std::string::npos || cur.is_undefined()) return cur;
    start = dot + 1;
  }
}

Result<int> compare_values(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    double x = a.as_double();
    double y = b.as_double();
    if (a.kind() != Kind::kFloat && b.kind() != Kind::kFloat) {
      return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
    }
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list()) {
    const List& x = a.as_list();
    const List& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (values_equal(x[i], y[i])) continue;
      return compare_values(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  return invalid_argument("'<' not supported between instances of '{}' and '{}'", a.type_name(),
                          b.type_name());
}

Status Builtins::check_string(const std::string& s) const {
  if (static_cast<int64_t>(s.size()) > limits_.max_output_bytes) {
    return Status(StatusCode::kResourceExhausted,
                  fmt::format("chat template exceeded its sandbox limit: string longer than {} "
                              "bytes",
                              limits_.max_output_bytes));
  }
  return {};
}

Result<List> Builtins::iterate(const Value& v) const {
  switch (v.kind()) {
    case Kind::kUndefined:
      return List{};
    case Kind::kList:
      return v.as_list();
    case Kind::kDict: {
      List keys;
      for (const auto& [k, e] : v.as_dict().items()) keys.push_back(Value::string(k));
      return keys;
    }
    case Kind::kString: {
      List units;
      for (auto& u : utf8_units(v.as_string())) units.push_back(Value::string(std::move(u)));
      return units;
    }
    default:
      return invalid_argument("'{}' object is not iterable", v.type_name());
  }
}

bool Builtins::is_method(const Value& object, const std::string& name) {
  if (object.is_string()) return string_methods().count(name) > 0;
  if (object.kind() == Kind::kDict) return dict_methods().count(name) > 0;
  if (object.is_list()) return list_methods().count(name) > 0;
  return false;
}

std::optional<Result<Value>> Builtins::method(const Value& object, const std::string& name,
                                              const CallArgs& args) const {
  if (!is_method(object, name)) return std::nullopt;
  if (unsafe_methods().count(name)) {
    return Result<Value>(invalid_argument(
        "'{}.{}' would modify data, which the chat template sandbox does not allow",
        object.type_name(), name));
  }
  if (object.is_string()) {
    Result<Value> r = string_method(object.as_string(), name, args);
    if (r.ok() && r->is_string()) {
      Status st = check_string(r->as_string());
      if (!st.ok()) return Result<Value>(st);
    }
    return r;
  }
  if (object.kind() == Kind::kDict) {
    const Dict& d = object.as_dict();
    if (name == "get") {
      const Value* key = args.get(0, "key");
      if (!key) return Result<Value>(invalid_argument("get() needs a key"));
      const Value* found = key->is_string() ? d.find(key->as_string()) : nullptr;
      if (found) return Result<Value>(*found);
      const Value* dflt = args.get(1, "default");
      return Result<Value>(dflt ? *dflt : Value::none());
    }
    if (name == "keys" || name == "values") {
      List out;
      for (const auto& [k, v] : d.items()) out.push_back(name == "keys" ? Value::string(k) : v);
      return Result<Value>(Value::list(std::move(out)));
    }
    if (name == "items") return Result<Value>(Value::list(dict_items(d)));
    return Result<Value>(object);  // copy(): values are immutable
  }
  const List& list = object.as_list();
  if (name == "copy") return Result<Value>(object);
  const Value* x = args.get(0, "x");
  if (!x) return Result<Value>(invalid_argument("{}() needs an argument", name));
  int64_t count = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    if (!values_equal(list[i], *x)) continue;
    if (name == "index") return Result<Value>(Value::integer(static_cast<int64_t>(i)));
    ++count;
  }
  if (name == "index") return Result<Value>(invalid_argument("value is not in list"));
  return Result<Value>(Value::integer(count));
}

}  // namespace tessera::text::jinja

// Jinja filters and tests of the subset (Builtins::filter / Builtins::test), with the argument
// conventions of Jinja 3 and transformers' own `tojson`.
// Invariant: undefined inputs behave as Jinja's default Undefined (empty when printed or
// iterated, an error when serialised); unknown filter or test names are errors.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "src/text/jinja_eval.h"

namespace tessera::text::jinja {
namespace {

CallArgs shift_args(const CallArgs& args, size_t n) {
  CallArgs out;
  for (size_t i = n; i < args.positional.size(); ++i) out.positional.push_back(args.positional[i]);
  out.keyword = args.keyword;
  return out;
}

bool arg_bool(const Value* v, bool dflt) { return v ? v->truthy() : dflt; }

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

Result<Value> to_int(const Value& v, const Value* dflt) {
  Value fallback = dflt ? *dflt : Value::integer(0);
  switch (v.kind()) {
    case Kind::kBool:
    case Kind::kInt:
      return Value::integer(v.as_int());
    case Kind::kFloat:
      if (!std::isfinite(v.as_double()) || std::fabs(v.as_double()) > 9.2e18) return fallback;
      return Value::integer(static_cast<int64_t>(v.as_double()));
    case Kind::kString: {
      const std::string& s = v.as_string();
      char* end = nullptr;
      errno = 0;
      long long i = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && errno == 0 && end && *end == '\0') return Value::integer(i);
      double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && end && *end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18) {
        return Value::integer(static_cast<int64_t>(d));
      }
      return fallback;
    }
    default:
      return fallback;
  }
}

}  // namespace

Result<Value> Builtins::filter(const std::string& name, const Value& in, const CallArgs& a) const {
  if (name == "default" || name == "d") {
    const Value* dflt = a.get(0, "default_value");
    bool boolean = arg_bool(a.get(1, "boolean"), false);
    if (in.is_undefined() || (boolean && !in.truthy())) return dflt ? *dflt : Value::string("");
    return in;
  }
  if (name == "tojson") {
    // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
    JsonOptions opt;
    opt.ensure_ascii = arg_bool(a.get(0, "ensure_ascii"), false);
    const Value* indent = a.get(1, "indent");
    if (indent && indent->kind() == Kind::kInt)
      opt.indent = static_cast<int>(std::clamp<int64_t>(indent->as_int(), 0, 64));
    if (indent && indent->is_string())
      return invalid_argument("tojson: string indents are not supported");
    const Value* seps = a.get(2, "separators");
    if (seps && seps->is_list() && seps->as_list().size() == 2 && seps->as_list()[0].is_string() &&
        seps->as_list()[1].is_string()) {
      opt.item_separator = seps->as_list()[0].as_string();
      opt.key_separator = seps->as_list()[1].as_string();
    }
    opt.sort_keys = arg_bool(a.get(3, "sort_keys"), false);
    TESSERA_ASSIGN_OR_RETURN(std::string s, to_json(in, opt));
    TESSERA_RETURN_IF_ERROR(check_string(s));
    return Value::string(std::move(s));
  }
  if (name == "length" || name == "count") {
    if (in.is_string())
      return Value::integer(static_cast<int64_t>(utf8_units(in.as_string()).size()));
    if (in.is_list()) return Value::integer(static_cast<int64_t>(in.as_list().size()));
    if (in.is_mapping()) return Value::integer(static_cast<int64_t>(in.as_dict().size()));
    if (in.is_undefined()) return Value::integer(0);
    return invalid_argument("object of type '{}' has no len()", in.type_name());
  }
  if (name == "items") {
    if (in.is_undefined()) return Value::list({});
    if (!in.is_mapping())
      return invalid_argument("items filter needs a mapping, got {}", in.type_name());
    List items;
    for (const auto& [k, v] : in.as_dict().items())
      items.push_back(Value::list({Value::string(k), v}, true));
    return Value::list(std::move(items));
  }
  if (name == "list") {
    TESSERA_ASSIGN_OR_RETURN(List items, iterate(in));
    return Value::list(std::move(items));
  }
  if (name == "first" || name == "last") {
    TESSERA_ASSIGN_OR_RETURN(List items, iterate(in));
    if (items.empty()) return Value::undefined("no " + name + " item, sequence was empty");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    const Value* sep = a.get(0, "d");
    const Value* attr = a.get(1, "attribute");
    TESSERA_ASSIGN_OR_RETURN(List items, iterate(in));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i && sep) out += to_str(*sep);
      out += to_str(attr ? get_attribute_path(items[i], to_str(*attr)) : items[i]);
      TESSERA_RETURN_IF_ERROR(check_string(out));
    }
    return Value::string(std::move(out));
  }
  if (name == "map") return map(in, a);
  if (name == "select" || name == "reject") return select(in, a, false, name == "select");
  if (name == "selectattr" || name == "rejectattr")
    return select(in, a, true, name == "selectattr");
  if (name == "string") return Value::string(to_str(in));
  if (name == "int") return to_int(in, a.get(0, "default"));
  if (name == "float") {
    if (in.is_number()) return Value::number(in.as_double());
    if (in.is_string()) {
      char* end = nullptr;
      double d = std::strtod(in.as_string().c_str(), &end);
      if (!in.as_string().empty() && end && *end == '\0') return Value::number(d);
    }
    const Value* dflt = a.get(0, "default");
    return dflt ? *dflt : Value::number(0.0);
  }
  if (name == "abs") {
    if (in.kind() == Kind::kFloat) return Value::number(std::fabs(in.as_double()));
    if (in.is_number()) {
      if (in.as_int() == INT64_MIN) return invalid_argument("integer overflow in abs");
      return Value::integer(in.as_int() < 0 ? -in.as_int() : in.as_int());
    }
    return invalid_argument("bad operand type for abs(): '{}'", in.type_name());
  }
  if (name == "round") {
    if (!in.is_number()) return invalid_argument("round needs a number");
    const Value* prec = a.get(0, "precision");
    double scale = std::pow(
        10.0, prec && prec->kind() == Kind::kInt ? static_cast<double>(prec->as_int()) : 0.0);
    std::string method = a.get(1, "method") ? to_str(*a.get(1, "method")) : "common";
    double x = in.as_double() * scale;
    double r = method == "floor" ? std::floor(x) : method == "ceil" ? std::ceil(x) : std::round(x);
    return Value::number(r / scale);
  }
  if (name == "reverse") {
    if (in.is_string()) {
      std::vector<std::string> units = utf8_units(in.as_string());
      std::string out;
      for (auto it = units.rbegin(); it != units.rend(); ++it) out += *it;
      return Value::string(std::move(out));
    }
    TESSERA_ASSIGN_OR_RETURN(List items, iterate(in));
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  if (name == "sort" || name == "unique" || name == "min" || name == "max" || name == "sum") {
    TESSERA_ASSIGN_OR_RETURN(List items, iterate(in));
    const Value* attr = a.get(name == "sort"     ? 2
                              : name == "sum"    ? 0
                              : name == "unique" ? 1
                                                 : 1,
                              "attribute");
    auto key = [&](const Value& v) { return attr ? get_attribute_path(v, to_str(*attr)) : v; };
    if (name == "sum") {
      const Value* start = a.get(1, "start");
      double total = start ? start->as_double() : 0.0;
      bool any_float = start && start->kind() == Kind::kFloat;
      for (const Value& v : items) {
        Value k = key(v);
        if (!k.is_number()) return invalid_argument("sum: '{}' is not a number", k.type_name());
        any_float = any_float || k.kind() == Kind::kFloat;
        total += k.as_double();
      }
      if (any_float) return Value::number(total);
      if (!(std::fabs(total) < 9.2e18)) return invalid_argument("integer overflow in sum");
      return Value::integer(static_cast<int64_t>(total));
    }
    if (name == "unique") {
      List out;
      for (const Value& v : items) {
        bool seen = false;
        for (const Value& o : out) seen = seen || values_equal(key(o), key(v));
        if (!seen) out.push_back(v);
      }
      return Value::list(std::move(out));
    }
    Status error;
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      Result<int> c = compare_values(key(x), key(y));
      if (!c.ok()) {
        error = c.status();
        return false;
      }
      return *c < 0;
    });
    TESSERA_RETURN_IF_ERROR(error);
    if (name == "sort") {
      if (arg_bool(a.get(0, "reverse"), false)) std::reverse(items.begin(), items.end());
      return Value::list(std::move(items));
    }
    if (items.empty()) return Value::undefined("no " + name + " item, sequence was empty");
    return name == "min" ? items.front() : items.back();
  }
  if (name == "dictsort") {
    if (!in.is_mapping()) return invalid_argument("dictsort needs a mapping");
    List items;
    for (const auto& [k, v] : in.as_dict().items())
      items.push_back(Value::list({Value::string(k), v}, true));
    std::stable_sort(items.begin(), items.end(), [](const Value& x, const Value& y) {
      return x.as_list()[0].as_string() < y.as_list()[0].as_string();
    });
    return Value::list(std::move(items));
  }
  if (name == "attr") {
    const Value* attr = a.get(0, "name");
    if (!attr) return invalid_argument("attr filter needs a name");
    return get_item(in, *attr);
  }
  if (name == "safe" || name == "forceescape" || name == "e" || name == "escape") {
    if (name == "safe") return in;
    return Value::string(html_escape(to_str(in)));
  }
  if (name == "batch" || name == "slice" || name == "pprint" || name == "urlize" ||
      name == "xmlattr" || name == "filesizeformat" || name == "format") {
    return invalid_argument("filter '{}' is not supported by the chat template sandbox", name);
  }
  // String filters: the input is converted to a string first.
  std::string s = to_str(in);
  if (name == "trim")
    return method(Value::string(s), "strip",
                  CallArgs{{a.get(0, "chars") ? *a.get(0, "chars") : Value::none()}, {}})
        .value();
  if (name == "upper" || name == "lower" || name == "capitalize" || name == "title") {
    return method(Value::string(s), name, CallArgs{}).value();
  }
  if (name == "replace") {
    CallArgs args = a;
    return method(Value::string(s), "replace", args).value();
  }
  if (name == "wordcount") {
    auto parts = method(Value::string(s), "split", CallArgs{}).value();
    if (!parts.ok()) return parts;
    return Value::integer(static_cast<int64_t>(parts->as_list().size()));
  }
  if (name == "indent") {
    const Value* width_v = a.get(0, "width");
    std::string pad =
        width_v && width_v->is_string()
            ? width_v->as_string()
            : std::string(
                  static_cast<size_t>(std::clamp<int64_t>(width_v ? width_v->as_int() : 4, 0, 256)),
                  ' ');
    bool first = arg_bool(a.get(1, "first"), false);
    bool blank = arg_bool(a.get(2, "blank"), false);
    std::string out;
    size_t start = 0;
    bool is_first = true;
    while (start <= s.size()) {
      size_t nl = s.find('\n', start);
      std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      if ((!is_first || first) && (blank || !line.empty())) out += pad;
      out += line;
      if (nl == std::string::npos) break;
      out += '\n';
      start = nl + 1;
      is_first = false;
      TESSERA_RETURN_IF_ERROR(check_string(out));
    }
    return Value::string(std::move(out));
  }
  if (name == "center") {
    int64_t width = a.get(0, "width") ? a.get(0, "width")->as_int() : 80;
    int64_t len = static_cast<int64_t>(utf8_units(s).size());
    if (width <= len) return Value::string(s);
    width = std::min<int64_t>(width, limits_.max_output_bytes);
    int64_t total = width - len;
    int64_t left = total / 2 + (total & width & 1);
    return Value::string(std::string(static_cast<size_t>(left), ' ') + s +
                         std::string(static_cast<size_t>(total - left), ' '));
  }
  return invalid_argument("unknown filter '{}'", name);
}

Result<Value> Builtins::map(const Value& input, const CallArgs& a) const {
  TESSERA_ASSIGN_OR_RETURN(List items, iterate(input));
  List out;
  const Value* attr = a.get(1000, "attribute");
  if (attr) {
    const Value* dflt = a.get(1000, "default");
    for (const Value& v : items) {
      Value got = get_attribute_path(v, to_str(*attr));
      out.push_back(got.is_undefined() && dflt ? *dflt : got);
    }
    return Value::list(std::move(out));
  }
  if (a.positional.empty()) return invalid_argument("map needs a filter name or attribute=");
  std::string filter_name = to_str(a.positional[0]);
  CallArgs rest = shift_args(a, 1);
  for (const Value& v : items) {
    TESSERA_ASSIGN_OR_RETURN(Value r, filter(filter_name, v, rest));
    out.push_back(std::move(r));
  }
  return Value::list(std::move(out));
}

Result<Value> Builtins::select(const Value& input, const CallArgs& a, bool by_attr,
                               bool keep) const {
  TESSERA_ASSIGN_OR_RETURN(List items, iterate(input));
  size_t next = 0;
  std::string attr;
  if (by_attr) {
    if (a.positional.empty()) return invalid_argument("selectattr/rejectattr need an attribute");
    attr = to_str(a.positional[next++]);
  }
  std::string test_name;
  if (next < a.positional.size()) test_name = to_str(a.positional[next++]);
  CallArgs rest = shift_args(a, next);
  List out;
  for (const Value& v : items) {
    Value probe = by_attr ? get_attribute_path(v, attr) : v;
    bool pass = probe.truthy();
    if (!test_name.empty()) {
      TESSERA_ASSIGN_OR_RETURN(pass, test(test_name, probe, rest));
    }
    if (pass == keep) out.push_back(v);
  }
  return Value::list(std::move(out));
}

Result<bool> Builtins::test(const std::string& name, const Value& v, const CallArgs& a) const {
  const Value* arg = a.get(0, "other");
  auto need_arg = [&]() -> Status {
    if (!arg) return invalid_argument("test '{}' needs an argument", name);
    return {};
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind() == Kind::kBool;
  if (name == "true") return v.kind() == Kind::kBool && v.as_bool();
  if (name == "false") return v.kind() == Kind::kBool && !v.as_bool();
  if (name == "integer") return v.kind() == Kind::kInt;
  if (name == "float") return v.kind() == Kind::kFloat;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_mapping();
  if (name == "sequence") return v.is_list() || v.is_string() || v.kind() == Kind::kDict;
  if (name == "iterable")
    return v.is_list() || v.is_string() || v.kind() == Kind::kDict || v.is_undefined();
  if (name == "callable") return v.kind() == Kind::kCallable;
  if (name == "escaped") return false;
  if (name == "lower")
    return v.is_string() && method(v, "lower", {})->value().as_string() == v.as_string();
  if (name == "upper")
    return v.is_string() && method(v, "upper", {})->value().as_string() == v.as_string();
  if (name == "even" || name == "odd") {
    if (v.kind() != Kind::kInt && v.kind() != Kind::kBool)
      return invalid_argument("{} test needs an integer", name);
    return (v.as_int() % 2 == 0) == (name == "even");
  }
  if (name == "divisibleby") {
    TESSERA_RETURN_IF_ERROR(need_arg());
    if (!arg->is_number() || arg->as_int() == 0 || !v.is_number()) {
      return invalid_argument("divisibleby needs non-zero integers");
    }
    if (arg->as_int() == -1) return true;
    return v.as_int() % arg->as_int() == 0;
  }
  if (name == "sameas") {
    TESSERA_RETURN_IF_ERROR(need_arg());
    if (v.kind() != arg->kind()) return false;
    if (v.is_none() || v.kind() == Kind::kBool) return values_equal(v, *arg);
    return v.is_mapping() ? &v.as_dict() == &arg->as_dict() : false;
  }
  if (name == "eq" || name == "equalto" || name == "==" || name == "ne" || name == "!=") {
    TESSERA_RETURN_IF_ERROR(need_arg());
    return values_equal(v, *arg) == (name != "ne" && name != "!=");
  }
  if (name == "lt" || name == "lessthan" || name == "<" || name == "le" || name == "<=" ||
      name == "gt" || name == "greaterthan" || name == ">" || name == "ge" || name == ">=") {
    TESSERA_RETURN_IF_ERROR(need_arg());
    TESSERA_ASSIGN_OR_RETURN(int c, compare_values(v, *arg));
    if (name == "lt" || name == "lessthan" || name == "<") return c < 0;
    if (name == "le" || name == "<=") return c <= 0;
    if (name == "gt" || name == "greaterthan" || name == ">") return c > 0;
    return c >= 0;
  }
  if (name == "in") {
    TESSERA_RETURN_IF_ERROR(need_arg());
    if (arg->is_string()) {
      if (!v.is_string())
        return invalid_argument("'in <string>' requires string as left operand, not {}",
                                v.type_name());
      return arg->as_string().find(v.as_string()) != std::string::npos;
    }
    if (arg->is_mapping()) return v.is_string() && arg->as_dict().find(v.as_string()) != nullptr;
    if (arg->is_list()) {
      for (const Value& e : arg->as_list()) {
        if (values_equal(e, v)) return true;
      }
      return false;
    }
    if (arg->is_undefined()) return false;
    return invalid_argument("argument of type '{}' is not iterable", arg->type_name());
  }
  return invalid_argument("unknown test '{}'", name);
}

}  // namespace tessera::text::jinja

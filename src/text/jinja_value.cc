// Jinja value helpers: JSON import, Python str/repr/float formatting and json.dumps output.
// Invariant: formatting matches CPython byte for byte for the JSON-typed data templates see.
#include "src/text/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace tessera::text::jinja {

const Value* Dict::find(const std::string& key) const {
  for (const auto& [k, v] : items_) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Dict::set(const std::string& key, Value value) {
  for (auto& [k, v] : items_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items_.emplace_back(key, std::move(value));
}

const Value* CallArgs::get(size_t index, const char* name) const {
  for (const auto& [k, v] : keyword) {
    if (k == name) return &v;
  }
  return index < positional.size() ? &positional[index] : nullptr;
}

Value Value::dict(Dict d) {
  Value v = with_kind(Kind::kDict);
  for (const auto& [k, e] : d.items()) v.depth_ = std::max(v.depth_, e.depth_ + 1);
  v.dict_ = std::make_shared<Dict>(std::move(d));
  return v;
}

Value Value::namespace_object(Dict d) {
  Value v = dict(std::move(d));
  v.kind_ = Kind::kNamespace;
  v.depth_ = 0;  // printed as <Namespace>, never walked
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  using T = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case T::null:
    case T::discarded:
      return none();
    case T::boolean:
      return boolean(j.get<bool>());
    case T::number_integer:
      return integer(j.get<int64_t>());
    case T::number_unsigned:
      return integer(static_cast<int64_t>(j.get<uint64_t>()));
    case T::number_float:
      return number(j.get<double>());
    case T::string:
      return string(j.get<std::string>());
    case T::binary:
      return none();
    case T::array: {
      List items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return list(std::move(items));
    }
    case T::object: {
      Dict d;
      for (auto it = j.begin(); it != j.end(); ++it) d.set(it.key(), from_json(it.value()));
      return dict(std::move(d));
    }
  }
  return none();
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
    case Kind::kInt:
      return int_ != 0;
    case Kind::kFloat:
      return float_ != 0.0;
    case Kind::kString:
      return !str_.empty();
    case Kind::kList:
      return !list_->empty();
    case Kind::kDict:
      return dict_->size() != 0;
    case Kind::kNamespace:
    case Kind::kCallable:
      return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return is_tuple() ? "tuple" : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "namespace";
    case Kind::kCallable:
      return "function";
  }
  return "object";
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0.0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then CPython's layout: scientific when exp < -4 or exp >= 16.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  size_t e_pos = sci.find('e');
  std::string mantissa = sci.substr(0, e_pos);
  int exp = std::atoi(sci.c_str() + e_pos + 1);
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  std::string out;
  if (exp < -4 || exp >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += eb;
  } else if (exp < 0) {
    out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  } else {
    size_t int_len = static_cast<size_t>(exp) + 1;
    if (digits.size() <= int_len) {
      out = digits + std::string(int_len - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, int_len) + "." + digits.substr(int_len);
    }
  }
  return negative ? "-" + out : out;
}

namespace {

void append_repr_string(std::string& out, const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  out += quote;
  for (unsigned char c : s) {
    if (c == static_cast<unsigned char>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof(b), "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += quote;
}

void append_repr(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Kind::kString:
      append_repr_string(out, v.as_string());
      return;
    case Kind::kList: {
      out += v.is_tuple() ? '(' : '[';
      const List& items = v.as_list();
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        append_repr(out, items[i]);
      }
      if (v.is_tuple() && items.size() == 1) out += ',';
      out += v.is_tuple() ? ')' : ']';
      return;
    }
    case Kind::kDict: {
      out += '{';
      bool first = true;
      for (const auto& [k, e] : v.as_dict().items()) {
        if (!first) out += ", ";
        first = false;
        append_repr_string(out, k);
        out += ": ";
        append_repr(out, e);
      }
      out += '}';
      return;
    }
    case Kind::kNamespace:
      out += "<Namespace>";
      return;
    default:
      out += to_str(v);
  }
}

void append_u_escape(std::string& out, uint32_t unit) {
  char b[8];
  std::snprintf(b, sizeof(b), "\\u%04x", unit);
  out += b;
}

void append_json_char(std::string& out, unsigned char c) {
  switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
      break;
    default:
      if (c < 0x20) {
        append_u_escape(out, c);
      } else {
        out += static_cast<char>(c);
      }
  }
}

void append_json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  if (!ensure_ascii) {
    for (unsigned char c : s) append_json_char(out, c);
    out += '"';
    return;
  }
  for (const std::string& unit : utf8_units(s)) {
    unsigned char c0 = static_cast<unsigned char>(unit[0]);
    if (unit.size() == 1 && c0 < 0x80) {
      append_json_char(out, c0);
      continue;
    }
    uint32_t cp = 0xFFFD;
    if (unit.size() == 2) cp = ((c0 & 0x1Fu) << 6) | (unit[1] & 0x3Fu);
    if (unit.size() == 3) cp = ((c0 & 0x0Fu) << 12) | ((unit[1] & 0x3Fu) << 6) | (unit[2] & 0x3Fu);
    if (unit.size() == 4) {
      cp = ((c0 & 0x07u) << 18) | ((unit[1] & 0x3Fu) << 12) | ((unit[2] & 0x3Fu) << 6) |
           (unit[3] & 0x3Fu);
    }
    if (cp >= 0x10000) {
      append_u_escape(out, 0xD800 + ((cp - 0x10000) >> 10));
      append_u_escape(out, 0xDC00 + ((cp - 0x10000) & 0x3FF));
    } else {
      append_u_escape(out, cp);
    }
  }
  out += '"';
}

Status append_json(std::string& out, const Value& v, const JsonOptions& opt, int level) {
  const int indent = opt.indent;
  const std::string item_sep =
      !opt.item_separator.empty() ? opt.item_separator : (indent >= 0 ? "," : ", ");
  auto newline = [&](int lvl) {
    out += '\n';
    out.append(static_cast<size_t>(indent) * static_cast<size_t>(lvl), ' ');
  };
  switch (v.kind()) {
    case Kind::kUndefined:
      return invalid_argument("tojson: value is undefined");
    case Kind::kNone:
      out += "null";
      return {};
    case Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      return {};
    case Kind::kInt:
      out += std::to_string(v.as_int());
      return {};
    case Kind::kFloat: {
      double d = v.as_double();
      if (std::isnan(d)) {
        out += "NaN";
      } else if (std::isinf(d)) {
        out += d < 0 ? "-Infinity" : "Infinity";
      } else {
        out += float_repr(d);
      }
      return {};
    }
    case Kind::kString:
      append_json_string(out, v.as_string(), opt.ensure_ascii);
      return {};
    case Kind::kList: {
      const List& items = v.as_list();
      if (items.empty()) {
        out += "[]";
        return {};
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        if (indent >= 0) newline(level + 1);
        TESSERA_RETURN_IF_ERROR(append_json(out, items[i], opt, level + 1));
      }
      if (indent >= 0) newline(level);
      out += ']';
      return {};
    }
    case Kind::kDict: {
      auto items = v.as_dict().items();
      if (opt.sort_keys) {
        std::stable_sort(items.begin(), items.end(),
                         [](const auto& x, const auto& y) { return x.first < y.first; });
      }
      if (items.empty()) {
        out += "{}";
        return {};
      }
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        if (indent >= 0) newline(level + 1);
        append_json_string(out, items[i].first, opt.ensure_ascii);
        out += opt.key_separator;
        TESSERA_RETURN_IF_ERROR(append_json(out, items[i].second, opt, level + 1));
      }
      if (indent >= 0) newline(level);
      out += '}';
      return {};
    }
    case Kind::kNamespace:
    case Kind::kCallable:
      return invalid_argument("tojson: a {} is not JSON serializable", v.type_name());
  }
  return {};
}

}  // namespace

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return v.as_bool() ? "True" : "False";
    case Kind::kInt:
      return std::to_string(v.as_int());
    case Kind::kFloat:
      return float_repr(v.as_double());
    case Kind::kString:
      return v.as_string();
    case Kind::kCallable:
      return "<function " + v.as_string() + ">";
    default: {
      std::string out;
      append_repr(out, v);
      return out;
    }
  }
}

std::string to_repr(const Value& v) {
  std::string out;
  append_repr(out, v);
  return out;
}

Result<std::string> to_json(const Value& v, const JsonOptions& options) {
  std::string out;
  TESSERA_RETURN_IF_ERROR(append_json(out, v, options, 0));
  return out;
}

bool values_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Kind::kFloat || b.kind() == Kind::kFloat) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.as_string() == b.as_string();
    case Kind::kList: {
      const List& x = a.as_list();
      const List& y = b.as_list();
      if (x.size() != y.size() || a.is_tuple() != b.is_tuple()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!values_equal(x[i], y[i])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      const Dict& x = a.as_dict();
      const Dict& y = b.as_dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.items()) {
        const Value* other = y.find(k);
        if (!other || !values_equal(v, *other)) return false;
      }
      return true;
    }
    case Kind::kNamespace:
      return &a.as_dict() == &b.as_dict();
    case Kind::kCallable:
      return &a.as_callable() == &b.as_callable();
    default:
      return false;
  }
}

std::vector<std::string> utf8_units(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 1;
    if (i + len > s.size()) len = 1;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
        len = 1;
        break;
      }
    }
    out.push_back(s.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace tessera::text::jinja

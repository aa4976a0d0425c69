// Tree-walking evaluator for the Jinja subset (see jinja_eval.h). Scoping follows Jinja: each
// for-loop iteration and each macro call gets a fresh frame (so `set` inside them does not leak;
// namespaces carry state out), `if` bodies share their enclosing frame.
// Invariant: no host state is reachable: names resolve only to the globals given, template
// variables, and the sandbox's own callables.
#include "src/text/jinja_eval.h"

#include <cmath>
#include <ctime>
#include <limits>

namespace tessera::text::jinja {
namespace {

struct Frame {
  Dict vars;
  Frame* parent = nullptr;

  const Value* lookup(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent) {
      if (const Value* v = f->vars.find(name)) return v;
    }
    return nullptr;
  }
};

enum class Flow { kNormal, kBreak, kContinue };

constexpr int kMaxValueDepth = 256;

Status exhausted(const std::string& what) {
  return Status(StatusCode::kResourceExhausted,
                "chat template exceeded its sandbox limit: " + what);
}

class Interpreter {
 public:
  explicit Interpreter(const ChatTemplateLimits& limits) : limits_(limits), builtins_(limits) {}
  // NOTE: a namespace can hold itself (`ns.me = [ns]`); emptying them all breaks such cycles.
  ~Interpreter() {
    for (Value& ns : namespaces_) ns.mutable_namespace().clear();
  }

  Result<std::string> run(const Template& tpl, const Dict& globals) {
    root_.vars = globals;
    install_globals();
    std::string out;
    Flow flow = Flow::kNormal;
    TESSERA_RETURN_IF_ERROR(exec_body(tpl.body, root_, out, &flow));
    return out;
  }

 private:
  Status fail(int line, int column, const std::string& msg) const {
    return invalid_argument("chat template error at line {}, column {}: {}", line, column, msg);
  }
  Status locate(const Status& st, int line, int column) const {
    if (st.ok() || st.code() == StatusCode::kResourceExhausted ||
        st.message().rfind("chat template", 0) == 0) {
      return st;
    }
    return Status(st.code(), fmt::format("chat template error at line {}, column {}: {}", line,
                                         column, st.message()));
  }

  Status step() {
    if (++steps_ > limits_.max_steps) {
      return exhausted(fmt::format("more than {} evaluation steps", limits_.max_steps));
    }
    return {};
  }

  Status append(std::string& out, const std::string& text) {
    if (static_cast<int64_t>(out.size() + text.size()) > limits_.max_output_bytes) {
      return exhausted(fmt::format("output larger than {} bytes", limits_.max_output_bytes));
    }
    out += text;
    return {};
  }

  void install_globals() {
    auto set_default = [&](const std::string& name, Value v) {
      if (!root_.vars.find(name)) root_.vars.set(name, std::move(v));
    };
    set_default("raise_exception",
                Value::callable("raise_exception", [](const CallArgs& a) -> Result<Value> {
                  const Value* msg = a.get(0, "message");
                  return invalid_argument("chat template raised an exception: {}",
                                          msg ? to_str(*msg) : "");
                }));
    set_default("strftime_now",
                Value::callable("strftime_now", [](const CallArgs& a) -> Result<Value> {
                  const Value* fmt_arg = a.get(0, "format");
                  if (!fmt_arg || !fmt_arg->is_string())
                    return invalid_argument("strftime_now needs a format string");
                  std::time_t now = std::time(nullptr);
                  std::tm tm{};
                  localtime_r(&now, &tm);
                  char buf[256];
                  size_t n = std::strftime(buf, sizeof(buf), fmt_arg->as_string().c_str(), &tm);
                  return Value::string(std::string(buf, n));
                }));
    auto make_dict = [](const CallArgs& a, const char* what) -> Result<Dict> {
      Dict d;
      if (!a.positional.empty()) {
        if (a.positional.size() > 1 || !a.positional[0].is_mapping()) {
          return invalid_argument("{}() takes at most one mapping argument", what);
        }
        d = a.positional[0].as_dict();
      }
      for (const auto& [k, v] : a.keyword) d.set(k, v);
      return d;
    };
    set_default("namespace",
                Value::callable("namespace", [this, make_dict](const CallArgs& a) -> Result<Value> {
                  TESSERA_ASSIGN_OR_RETURN(Dict d, make_dict(a, "namespace"));
                  for (const auto& [k, v] : d.items()) {
                    if (!k.empty() && k[0] == '_') {
                      return invalid_argument(
                          "namespace attributes may not start with '_' (got '{}')", k);
                    }
                  }
                  Value ns = Value::namespace_object(std::move(d));
                  namespaces_.push_back(ns);
                  return ns;
                }));
    set_default("dict", Value::callable("dict", [make_dict](const CallArgs& a) -> Result<Value> {
                  TESSERA_ASSIGN_OR_RETURN(Dict d, make_dict(a, "dict"));
                  return Value::dict(std::move(d));
                }));
    int64_t cap = limits_.max_loop_iterations;
    set_default(
        "range", Value::callable("range", [cap](const CallArgs& a) -> Result<Value> {
          int64_t bounds[3] = {0, 0, 1};
          size_t n = a.positional.size();
          if (n < 1 || n > 3) return invalid_argument("range() takes 1 to 3 arguments");
          for (size_t i = 0; i < n; ++i) {
            if (a.positional[i].kind() != Kind::kInt && a.positional[i].kind() != Kind::kBool) {
              return invalid_argument("range() arguments must be integers");
            }
          }
          if (n == 1) {
            bounds[1] = a.positional[0].as_int();
          } else {
            bounds[0] = a.positional[0].as_int();
            bounds[1] = a.positional[1].as_int();
            if (n == 3) bounds[2] = a.positional[2].as_int();
          }
          if (bounds[2] == 0) return invalid_argument("range() step must not be zero");
          List items;
          for (int64_t i = bounds[0]; bounds[2] > 0 ? i < bounds[1] : i > bounds[1];) {
            if (static_cast<int64_t>(items.size()) >= cap) {
              return exhausted(fmt::format("range() longer than {} items", cap));
            }
            items.push_back(Value::integer(i));
            if (__builtin_add_overflow(i, bounds[2], &i)) break;
          }
          return Value::list(std::move(items));
        }));
  }

  // ---- statements --------------------------------------------------------------------------

  Status exec_body(const Body& body, Frame& frame, std::string& out, Flow* flow) {
    for (const auto& s : body) {
      TESSERA_RETURN_IF_ERROR(step());
      TESSERA_RETURN_IF_ERROR(exec(*s, frame, out, flow));
      if (*flow != Flow::kNormal) return {};
    }
    return {};
  }

  Status exec(const Stmt& s, Frame& frame, std::string& out, Flow* flow) {
    switch (s.kind) {
      case Stmt::Kind::kText:
        return append(out, s.text);
      case Stmt::Kind::kOutput: {
        TESSERA_ASSIGN_OR_RETURN(Value v, eval(*s.expr, frame));
        return append(out, to_str(v));
      }
      case Stmt::Kind::kIf:
        for (const auto& [cond, branch] : s.branches) {
          bool take = true;
          if (cond) {
            TESSERA_ASSIGN_OR_RETURN(Value c, eval(*cond, frame));
            take = c.truthy();
          }
          if (take) return exec_body(branch, frame, out, flow);
        }
        return {};
      case Stmt::Kind::kFor:
        return exec_for(s, frame, out);
      case Stmt::Kind::kSet: {
        TESSERA_ASSIGN_OR_RETURN(Value v, eval(*s.expr, frame));
        return assign(s, frame, std::move(v));
      }
      case Stmt::Kind::kSetBlock: {
        std::string captured;
        Flow inner = Flow::kNormal;
        TESSERA_RETURN_IF_ERROR(exec_body(s.body, frame, captured, &inner));
        frame.vars.set(s.text, Value::string(std::move(captured)));
        return {};
      }
      case Stmt::Kind::kMacro:
        frame.vars.set(s.text, make_macro(s));
        return {};
      case Stmt::Kind::kBreak:
      case Stmt::Kind::kContinue:
        if (loop_depth_ == 0) return fail(s.line, s.column, "break/continue outside a for loop");
        *flow = s.kind == Stmt::Kind::kBreak ? Flow::kBreak : Flow::kContinue;
        return {};
      case Stmt::Kind::kFilterBlock: {
        std::string captured;
        Flow inner = Flow::kNormal;
        TESSERA_RETURN_IF_ERROR(exec_body(s.body, frame, captured, &inner));
        TESSERA_ASSIGN_OR_RETURN(Value v, apply_filters(*s.expr, Value::string(captured), frame));
        return append(out, to_str(v));
      }
      case Stmt::Kind::kScope:
        return exec_body(s.body, frame, out, flow);
    }
    return {};
  }

  Status assign(const Stmt& s, Frame& frame, Value v) {
    if (!s.attr.empty()) {
      const Value* target = frame.lookup(s.targets[0]);
      if (!target || target->kind() != Kind::kNamespace) {
        return fail(s.line, s.column,
                    "cannot assign attribute on non-namespace object '" + s.targets[0] + "'");
      }
      if (s.attr[0] == '_') {
        return fail(s.line, s.column, "namespace attributes may not start with '_'");
      }
      target->mutable_namespace().set(s.attr, std::move(v));
      return {};
    }
    return bind_targets(s.targets, v, frame.vars, s.line, s.column);
  }

  Status bind_targets(const std::vector<std::string>& targets, const Value& v, Dict& vars, int line,
                      int column) {
    if (targets.size() == 1) {
      vars.set(targets[0], v);
      return {};
    }
    if (!v.is_list() || v.as_list().size() != targets.size()) {
      return fail(line, column,
                  fmt::format("cannot unpack {} into {} names", v.type_name(), targets.size()));
    }
    for (size_t i = 0; i < targets.size(); ++i) vars.set(targets[i], v.as_list()[i]);
    return {};
  }

  Status exec_for(const Stmt& s, Frame& frame, std::string& out) {
    TESSERA_ASSIGN_OR_RETURN(Value iterable, eval(*s.expr, frame));
    Result<List> listed = builtins_.iterate(iterable);
    if (!listed.ok()) return locate(listed.status(), s.line, s.column);
    List items = std::move(listed).value();
    if (s.cond) {
      List kept;
      for (const Value& item : items) {
        Frame probe{{}, &frame};
        TESSERA_RETURN_IF_ERROR(bind_targets(s.targets, item, probe.vars, s.line, s.column));
        TESSERA_ASSIGN_OR_RETURN(Value c, eval(*s.cond, probe));
        if (c.truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      Flow flow = Flow::kNormal;
      return exec_body(s.else_body, frame, out, &flow);
    }
    ++loop_depth_;
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      if (++iterations_ > limits_.max_loop_iterations) {
        return exhausted(fmt::format("more than {} loop iterations", limits_.max_loop_iterations));
      }
      Frame iter{{}, &frame};
      TESSERA_RETURN_IF_ERROR(
          bind_targets(s.targets, items[static_cast<size_t>(i)], iter.vars, s.line, s.column));
      Dict loop;
      loop.set("index0", Value::integer(i));
      loop.set("index", Value::integer(i + 1));
      loop.set("revindex", Value::integer(n - i));
      loop.set("revindex0", Value::integer(n - i - 1));
      loop.set("first", Value::boolean(i == 0));
      loop.set("last", Value::boolean(i == n - 1));
      loop.set("length", Value::integer(n));
      loop.set("depth", Value::integer(1));
      loop.set("depth0", Value::integer(0));
      loop.set("previtem",
               i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("previtem"));
      loop.set("nextitem",
               i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("nextitem"));
      iter.vars.set("loop", Value::dict(std::move(loop)));
      Flow flow = Flow::kNormal;
      Status st = exec_body(s.body, iter, out, &flow);
      if (!st.ok()) {
        --loop_depth_;
        return st;
      }
      if (flow == Flow::kBreak) break;
    }
    --loop_depth_;
    return {};
  }

  Value make_macro(const Stmt& s) {
    const Stmt* def = &s;
    return Value::callable(s.text, [this, def](const CallArgs& args) -> Result<Value> {
      if (++call_depth_ > limits_.max_depth) {
        --call_depth_;
        return exhausted(fmt::format("macro calls nested deeper than {}", limits_.max_depth));
      }
      Result<Value> r = call_macro(*def, args);
      --call_depth_;
      return r;
    });
  }

  Result<Value> call_macro(const Stmt& def, const CallArgs& args) {
    if (args.positional.size() > def.params.size()) {
      return invalid_argument("macro '{}' takes {} arguments, got {}", def.text, def.params.size(),
                              args.positional.size());
    }
    Frame frame{{}, &root_};
    for (size_t i = 0; i < def.params.size(); ++i) {
      const auto& [name, default_expr] = def.params[i];
      const Value* given = nullptr;
      for (const auto& [k, v] : args.keyword) {
        if (k == name) given = &v;
      }
      if (!given && i < args.positional.size()) given = &args.positional[i];
      if (given) {
        frame.vars.set(name, *given);
      } else if (default_expr) {
        TESSERA_ASSIGN_OR_RETURN(Value v, eval(*default_expr, frame));
        frame.vars.set(name, std::move(v));
      } else {
        frame.vars.set(name, Value::undefined(name));
      }
    }
    std::string out;
    Flow flow = Flow::kNormal;
    int saved_loops = loop_depth_;
    loop_depth_ = 0;
    Status st = exec_body(def.body, frame, out, &flow);
    loop_depth_ = saved_loops;
    TESSERA_RETURN_IF_ERROR(st);
    return Value::string(std::move(out));
  }

  // ---- expressions -------------------------------------------------------------------------

  Result<Value> eval(const Expr& e, Frame& frame) {
    TESSERA_RETURN_IF_ERROR(step());
    if (++eval_depth_ > 4 * limits_.max_depth + 64) {
      --eval_depth_;
      return exhausted("expression nesting too deep");
    }
    Result<Value> r = eval_node(e, frame);
    --eval_depth_;
    if (!r.ok()) return locate(r.status(), e.line, e.column);
    if (r->depth() > kMaxValueDepth) {
      return exhausted(fmt::format("data nested deeper than {} levels", kMaxValueDepth));
    }
    return r;
  }

  Result<CallArgs> eval_args(const Expr& e, Frame& frame) {
    CallArgs args;
    for (const auto& a : e.args) {
      TESSERA_ASSIGN_OR_RETURN(Value v, eval(*a, frame));
      args.positional.push_back(std::move(v));
    }
    for (const auto& [k, a] : e.kwargs) {
      TESSERA_ASSIGN_OR_RETURN(Value v, eval(*a, frame));
      args.keyword.emplace_back(k, std::move(v));
    }
    return args;
  }

  // Applies a filter chain built by the parser for `{% filter %}` (innermost input is null).
  Result<Value> apply_filters(const Expr& e, Value input, Frame& frame) {
    if (e.a) {
      TESSERA_ASSIGN_OR_RETURN(input, apply_filters(*e.a, std::move(input), frame));
    }
    TESSERA_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, frame));
    return builtins_.filter(e.name, input, args);
  }

  Result<Value> eval_node(const Expr& e, Frame& frame) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName: {
        const Value* v = frame.lookup(e.name);
        return v ? *v : Value::undefined("'" + e.name + "' is undefined");
      }
      case Expr::Kind::kList: {
        List items;
        for (const auto& a : e.args) {
          TESSERA_ASSIGN_OR_RETURN(Value v, eval(*a, frame));
          items.push_back(std::move(v));
        }
        return Value::list(std::move(items), e.is_tuple);
      }
      case Expr::Kind::kDict: {
        Dict d;
        for (const auto& [k, v] : e.pairs) {
          TESSERA_ASSIGN_OR_RETURN(Value key, eval(*k, frame));
          if (!key.is_string()) return invalid_argument("dict literal keys must be strings");
          TESSERA_ASSIGN_OR_RETURN(Value value, eval(*v, frame));
          d.set(key.as_string(), std::move(value));
        }
        return Value::dict(std::move(d));
      }
      case Expr::Kind::kAttr: {
        TESSERA_ASSIGN_OR_RETURN(Value obj, eval(*e.a, frame));
        if (obj.is_undefined()) return undefined_error(obj);
        if (Builtins::is_method(obj, e.name)) {
          // A bound method value (Jinja's getattr finds methods before items).
          const Builtins* builtins = &builtins_;
          std::string name = e.name;
          return Value::callable(
              name, [builtins, obj, name](const CallArgs& args) -> Result<Value> {
                auto r = builtins->method(obj, name, args);
                if (!r) return invalid_argument("'{}' has no method '{}'", obj.type_name(), name);
                return std::move(*r);
              });
        }
        return get_item(obj, Value::string(e.name));
      }
      case Expr::Kind::kItem: {
        TESSERA_ASSIGN_OR_RETURN(Value obj, eval(*e.a, frame));
        if (obj.is_undefined()) return undefined_error(obj);
        TESSERA_ASSIGN_OR_RETURN(Value key, eval(*e.b, frame));
        return get_item(obj, key);
      }
      case Expr::Kind::kSlice:
        return eval_slice(e, frame);
      case Expr::Kind::kCall:
        return eval_call(e, frame);
      case Expr::Kind::kFilter: {
        TESSERA_ASSIGN_OR_RETURN(Value input, eval(*e.a, frame));
        TESSERA_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, frame));
        return builtins_.filter(e.name, input, args);
      }
      case Expr::Kind::kTest: {
        TESSERA_ASSIGN_OR_RETURN(Value input, eval(*e.a, frame));
        TESSERA_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, frame));
        TESSERA_ASSIGN_OR_RETURN(bool r, builtins_.test(e.name, input, args));
        return Value::boolean(r != e.negated);
      }
      case Expr::Kind::kUnary:
        return eval_unary(e, frame);
      case Expr::Kind::kBinary:
        return eval_binary(e, frame);
      case Expr::Kind::kCompare:
        return eval_compare(e, frame);
      case Expr::Kind::kAnd:
      case Expr::Kind::kOr: {
        TESSERA_ASSIGN_OR_RETURN(Value a, eval(*e.a, frame));
        bool short_circuit = e.kind == Expr::Kind::kAnd ? !a.truthy() : a.truthy();
        if (short_circuit) return a;
        return eval(*e.b, frame);
      }
      case Expr::Kind::kCond: {
        TESSERA_ASSIGN_OR_RETURN(Value c, eval(*e.b, frame));
        if (c.truthy()) return eval(*e.a, frame);
        if (e.c) return eval(*e.c, frame);
        return Value::undefined("conditional expression had no else branch");
      }
    }
    return Value::undefined();
  }

  static Status undefined_error(const Value& v) {
    return invalid_argument("{}", v.as_string().empty() ? "value is undefined" : v.as_string());
  }

  Result<Value> eval_call(const Expr& e, Frame& frame) {
    if (e.a->kind == Expr::Kind::kAttr) {
      TESSERA_ASSIGN_OR_RETURN(Value obj, eval(*e.a->a, frame));
      if (obj.is_undefined()) return undefined_error(obj);
      TESSERA_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, frame));
      if (auto r = builtins_.method(obj, e.a->name, args)) return std::move(*r);
      Value callee = get_item(obj, Value::string(e.a->name));
      if (callee.kind() != Kind::kCallable) {
        return invalid_argument("'{}' object has no method '{}'", obj.type_name(), e.a->name);
      }
      return callee.as_callable()(args);
    }
    TESSERA_ASSIGN_OR_RETURN(Value callee, eval(*e.a, frame));
    if (callee.is_undefined()) return undefined_error(callee);
    if (callee.kind() != Kind::kCallable) {
      return invalid_argument("'{}' object is not callable", callee.type_name());
    }
    TESSERA_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, frame));
    return callee.as_callable()(args);
  }

  Result<Value> eval_slice(const Expr& e, Frame& frame) {
    TESSERA_ASSIGN_OR_RETURN(Value obj, eval(*e.a, frame));
    if (obj.is_undefined()) return undefined_error(obj);
    int64_t parts[3] = {0, 0, 1};
    bool present[3] = {false, false, false};
    const Expr* exprs[3] = {e.b.get(), e.c.get(), e.d.get()};
    for (int i = 0; i < 3; ++i) {
      if (!exprs[i]) continue;
      TESSERA_ASSIGN_OR_RETURN(Value v, eval(*exprs[i], frame));
      if (v.is_none()) continue;
      if (v.kind() != Kind::kInt && v.kind() != Kind::kBool) {
        return invalid_argument("slice indices must be integers");
      }
      parts[i] = v.as_int();
      present[i] = true;
    }
    if (parts[2] == 0) return invalid_argument("slice step cannot be zero");
    std::vector<std::string> units;
    const List* list = nullptr;
    int64_t n = 0;
    if (obj.is_string()) {
      units = utf8_units(obj.as_string());
      n = static_cast<int64_t>(units.size());
    } else if (obj.is_list()) {
      list = &obj.as_list();
      n = static_cast<int64_t>(list->size());
    } else {
      return invalid_argument("'{}' object is not subscriptable", obj.type_name());
    }
    // Python's slice.indices().
    int64_t step = parts[2];
    auto clamp = [&](int64_t v, bool given, int64_t dflt) {
      if (!given) return dflt;
      if (v < 0) v += n;
      if (step > 0) return std::min(std::max<int64_t>(v, 0), n);
      return std::min(std::max<int64_t>(v, -1), n - 1);
    };
    int64_t start = clamp(parts[0], present[0], step > 0 ? 0 : n - 1);
    int64_t stop = clamp(parts[1], present[1], step > 0 ? n : -1);
    std::string s;
    List items;
    for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
      if (list) {
        items.push_back((*list)[static_cast<size_t>(i)]);
      } else {
        s += units[static_cast<size_t>(i)];
      }
      if (__builtin_add_overflow(i, step, &i)) break;
    }
    if (list) return Value::list(std::move(items), obj.is_tuple());
    return Value::string(std::move(s));
  }

  Result<Value> eval_unary(const Expr& e, Frame& frame) {
    TESSERA_ASSIGN_OR_RETURN(Value a, eval(*e.a, frame));
    if (e.name == "not") return Value::boolean(!a.truthy());
    if (!a.is_number()) {
      if (a.is_undefined()) return undefined_error(a);
      return invalid_argument("bad operand type for unary {}: '{}'", e.name, a.type_name());
    }
    if (e.name == "+") return a.kind() == Kind::kBool ? Value::integer(a.as_int()) : a;
    if (a.kind() == Kind::kFloat) return Value::number(-a.as_double());
    if (a.as_int() == std::numeric_limits<int64_t>::min())
      return invalid_argument("integer overflow");
    return Value::integer(-a.as_int());
  }

  // `a < b <= c` is `a < b and b <= c`, each operand evaluated once, stopping at the first false.
  Result<Value> eval_compare(const Expr& e, Frame& frame) {
    TESSERA_ASSIGN_OR_RETURN(Value left, eval(*e.args[0], frame));
    for (size_t i = 0; i < e.ops.size(); ++i) {
      TESSERA_ASSIGN_OR_RETURN(Value right, eval(*e.args[i + 1], frame));
      TESSERA_ASSIGN_OR_RETURN(Value r, compare(e.ops[i], left, right));
      if (!r.truthy()) return r;
      left = std::move(right);
    }
    return Value::boolean(true);
  }

  Result<Value> compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return Value::boolean(values_equal(a, b));
    if (op == "!=") return Value::boolean(!values_equal(a, b));
    if (op == "in" || op == "not in") {
      TESSERA_ASSIGN_OR_RETURN(bool r, builtins_.test("in", a, CallArgs{{b}, {}}));
      return Value::boolean(r != (op == "not in"));
    }
    if (a.is_undefined()) return undefined_error(a);
    if (b.is_undefined()) return undefined_error(b);
    TESSERA_ASSIGN_OR_RETURN(int c, compare_values(a, b));
    bool r = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
    return Value::boolean(r);
  }

  Result<Value> eval_binary(const Expr& e, Frame& frame) {
    TESSERA_ASSIGN_OR_RETURN(Value a, eval(*e.a, frame));
    TESSERA_ASSIGN_OR_RETURN(Value b, eval(*e.b, frame));
    const std::string& op = e.name;
    if (op == "~") {
      std::string s = to_str(a) + to_str(b);
      TESSERA_RETURN_IF_ERROR(builtins_.check_string(s));
      return Value::string(std::move(s));
    }
    if (a.is_undefined()) return undefined_error(a);
    if (b.is_undefined()) return undefined_error(b);
    return arithmetic(op, a, b);
  }

  Result<Value> arithmetic(const std::string& op, const Value& a, const Value& b) {
    auto type_error = [&]() -> Status {
      return invalid_argument("unsupported operand type(s) for {}: '{}' and '{}'", op,
                              a.type_name(), b.type_name());
    };
    if (op == "+" && a.is_string() && b.is_string()) {
      TESSERA_RETURN_IF_ERROR(builtins_.check_string(a.as_string() + b.as_string()));
      return Value::string(a.as_string() + b.as_string());
    }
    if (op == "+" && a.is_list() && b.is_list()) {
      List items = a.as_list();
      items.insert(items.end(), b.as_list().begin(), b.as_list().end());
      if (static_cast<int64_t>(items.size()) > limits_.max_loop_iterations) {
        return exhausted("list too long");
      }
      return Value::list(std::move(items), a.is_tuple() && b.is_tuple());
    }
    if (op == "*" && (a.is_string() || a.is_list()) && b.kind() == Kind::kInt) {
      return repeat(a, b.as_int());
    }
    if (op == "*" && (b.is_string() || b.is_list()) && a.kind() == Kind::kInt) {
      return repeat(b, a.as_int());
    }
    if (!a.is_number() || !b.is_number()) return type_error();
    bool floats = a.kind() == Kind::kFloat || b.kind() == Kind::kFloat;
    if (op == "/") {
      if (b.as_double() == 0.0) return invalid_argument("division by zero");
      return Value::number(a.as_double() / b.as_double());
    }
    if (floats || op == "**") {
      double x = a.as_double();
      double y = b.as_double();
      if (op == "**" && !floats && y >= 0) {
        double r = std::pow(x, y);
        if (std::fabs(r) > 9.0e18) return invalid_argument("integer overflow in **");
        int64_t base = a.as_int();
        int64_t exp = b.as_int();
        if (base == 0 || base == 1) return Value::integer(exp == 0 ? 1 : base);
        if (base == -1) return Value::integer(exp % 2 == 0 ? 1 : -1);
        int64_t acc = 1;  // |base| >= 2 and |r| <= 9e18, so exp <= 63
        for (int64_t i = 0; i < exp; ++i) acc *= base;
        return Value::integer(acc);
      }
      if ((op == "//" || op == "%") && y == 0.0) return invalid_argument("division by zero");
      if (op == "+") return Value::number(x + y);
      if (op == "-") return Value::number(x - y);
      if (op == "*") return Value::number(x * y);
      if (op == "**") return Value::number(std::pow(x, y));
      if (op == "//") return Value::number(std::floor(x / y));
      if (op == "%") {
        double r = std::fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        return Value::number(r);
      }
      return type_error();
    }
    int64_t x = a.as_int();
    int64_t y = b.as_int();
    int64_t r = 0;
    if (op == "+" && !__builtin_add_overflow(x, y, &r)) return Value::integer(r);
    if (op == "-" && !__builtin_sub_overflow(x, y, &r)) return Value::integer(r);
    if (op == "*" && !__builtin_mul_overflow(x, y, &r)) return Value::integer(r);
    if (op == "//" || op == "%") {
      if (y == 0) return invalid_argument("integer division or modulo by zero");
      if (y == -1) {
        if (op == "//" && x == std::numeric_limits<int64_t>::min()) {
          return invalid_argument("integer overflow in //");
        }
        return Value::integer(op == "%" ? 0 : -x);
      }
      int64_t q = x / y;
      int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        --q;
        m += y;
      }
      return Value::integer(op == "//" ? q : m);
    }
    return invalid_argument("integer overflow in {}", op);
  }

  Result<Value> repeat(const Value& v, int64_t times) {
    if (times <= 0) return v.is_string() ? Value::string("") : Value::list({});
    if (v.is_string()) {
      if (static_cast<double>(v.as_string().size()) * static_cast<double>(times) >
          static_cast<double>(limits_.max_output_bytes)) {
        return exhausted(fmt::format("string longer than {} bytes", limits_.max_output_bytes));
      }
      std::string s;
      for (int64_t i = 0; i < times; ++i) s += v.as_string();
      return Value::string(std::move(s));
    }
    if (static_cast<double>(v.as_list().size()) * static_cast<double>(times) >
        static_cast<double>(limits_.max_loop_iterations)) {
      return exhausted("list too long");
    }
    List items;
    for (int64_t i = 0; i < times; ++i)
      items.insert(items.end(), v.as_list().begin(), v.as_list().end());
    return Value::list(std::move(items));
  }

  ChatTemplateLimits limits_;
  Builtins builtins_;
  Frame root_;
  int64_t steps_ = 0;
  int64_t iterations_ = 0;
  int call_depth_ = 0;
  int eval_depth_ = 0;
  int loop_depth_ = 0;
  std::vector<Value> namespaces_;
};

}  // namespace

Result<std::string> render_template(const Template& tpl, const Dict& globals,
                                    const ChatTemplateLimits& limits) {
  Interpreter interp(limits);
  return interp.run(tpl, globals);
}

}  // namespace tessera::text::jinja

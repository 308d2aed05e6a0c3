#include "tokenizer/chat_template.h"

#include <cmath>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_builtins.h"
#include "tokenizer/tokenizer.h"

namespace zephyr {

// Exact products and differences of 64-bit values (a GCC/Clang extension, hence the marker).
__extension__ typedef __int128 Int128;
__extension__ typedef unsigned __int128 UInt128;

namespace jinja {
namespace {

// An error that already carries its template position.
struct LocatedError : Error {
  using Error::Error;
};

[[noreturn]] void error_at(int line, int col, const std::string& what) {
  throw LocatedError("line " + std::to_string(line) + ", column " + std::to_string(col) + ": " + what);
}

int64_t py_mod(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

int64_t py_floordiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Python index/slice arithmetic over a sequence of n items.
List slice_items(const List& items, const Value* start, const Value* stop, const Value* step) {
  const auto n = static_cast<int64_t>(items.size());
  const int64_t st = step && !step->is_none() ? step->i : 1;
  if (st == 0) throw Error("slice step cannot be zero");
  auto norm = [&](const Value* v, int64_t def) {
    if (!v || v->is_none()) return def;
    int64_t x = v->i;
    if (x < 0) x += n;
    if (st > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  const int64_t b = norm(start, st > 0 ? 0 : n - 1), e = norm(stop, st > 0 ? n : -1);
  List out;
  for (int64_t k = b; st > 0 ? k < e : k > e; k += st) out.push_back(items[static_cast<size_t>(k)]);
  return out;
}

// Python has big integers; a template's int64 arithmetic that would wrap is an error instead.
[[noreturn]] void int_overflow(const std::string& op) { throw Error("integer overflow in " + op + " (beyond 64 bits)"); }

int64_t as_int(const Value& v) { return v.type == Value::Type::Bool ? v.b : v.i; }

class Interpreter {
 public:
  // Macro calls nest at most this deep: each level costs native stack.
  static constexpr int kMaxCallDepth = 64;

  explicit Interpreter(Value globals) { scopes_.push_back(std::move(globals)); }

  enum class Flow { Normal, Break, Continue };

  Flow exec(const Body& body, std::string& out) {
    for (const Node& n : body) {
      const Flow f = exec(n, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

 private:
  static void append(std::string& out, const std::string& piece) {
    check_string_size(out.size() + piece.size());
    out += piece;
  }

  // An error without a position (the work budget, the output's size) takes the statement's.
  Flow exec(const Node& n, std::string& out) {
    try {
      return exec_inner(n, out);
    } catch (const LocatedError&) {
      throw;
    } catch (const Error& e) {
      error_at(n.line, n.col, e.what());
    }
  }

  Flow exec_inner(const Node& n, std::string& out) {
    WorkBudget::charge(1);
    switch (n.kind) {
      case Node::Kind::Text: append(out, n.text); break;
      case Node::Kind::Output: append(out, to_str(eval(*n.exprs[0]))); break;
      case Node::Kind::If:
        for (const auto& [cond, body] : n.branches)
          if (truthy(eval(*cond))) return exec(body, out);
        return exec(n.else_body, out);
      case Node::Kind::For: return exec_for(n, out);
      case Node::Kind::Set: {
        Value v = eval(*n.exprs[0]);
        if (!n.attr.empty()) {
          Value ns = lookup(n.text);
          if (!ns.is_dict() || !ns.is_namespace) error_at(n.line, n.col, "cannot assign attribute \"" + n.attr + "\" on " + type_name(ns) + " \"" + n.text + "\" (only on a namespace())");
          ns.set(n.attr, std::move(v));
        } else {
          assign(n.targets, v, n.line, n.col);
        }
        break;
      }
      case Node::Kind::SetBlock: {
        std::string captured;
        exec(n.body, captured);
        scopes_.back().set(n.text, Value::string(captured));
        break;
      }
      case Node::Kind::Macro: scopes_.back().set(n.text, make_macro(n)); break;
      case Node::Kind::Break: return Flow::Break;
      case Node::Kind::Continue: return Flow::Continue;
      case Node::Kind::Generation: return exec(n.body, out);
    }
    return Flow::Normal;
  }

  void assign(const std::vector<std::string>& targets, const Value& v, int line, int col) {
    if (targets.size() == 1) {
      scopes_.back().set(targets[0], v);
      return;
    }
    const List items = iterate(v);
    if (items.size() != targets.size())
      error_at(line, col, "cannot unpack " + std::to_string(items.size()) + " values into " + std::to_string(targets.size()) + " names");
    for (size_t k = 0; k < targets.size(); ++k) scopes_.back().set(targets[k], items[k]);
  }

  Flow exec_for(const Node& n, std::string& out) {
    List items;
    try {
      items = iterate(eval(*n.exprs[0]));
    } catch (const LocatedError&) {
      throw;
    } catch (const Error& e) {
      error_at(n.line, n.col, e.what());
    }
    if (n.exprs.size() > 1) {  // "for x in xs if cond": filter before loop indices are counted
      List kept;
      for (const auto& it : items) {
        scopes_.push_back(Value::make_dict());
        assign(n.targets, it, n.line, n.col);
        const bool keep = truthy(eval(*n.exprs[1]));
        scopes_.pop_back();
        if (keep) kept.push_back(it);
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(n.else_body, out);
    const auto len = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < len; ++k) {
      Value loop = Value::make_dict({
          {"index", Value::integer(k + 1)},
          {"index0", Value::integer(k)},
          {"revindex", Value::integer(len - k)},
          {"revindex0", Value::integer(len - k - 1)},
          {"first", Value::boolean(k == 0)},
          {"last", Value::boolean(k == len - 1)},
          {"length", Value::integer(len)},
          {"previtem", k > 0 ? items[static_cast<size_t>(k - 1)] : Value::undefined("previtem")},
          {"nextitem", k + 1 < len ? items[static_cast<size_t>(k + 1)] : Value::undefined("nextitem")},
      });
      scopes_.push_back(Value::make_dict({{"loop", loop}}));
      assign(n.targets, items[static_cast<size_t>(k)], n.line, n.col);
      const Flow f = exec(n.body, out);
      scopes_.pop_back();
      if (f == Flow::Break) break;
    }
    return Flow::Normal;
  }

  Value make_macro(const Node& n) {
    const Node* node = &n;
    return Value::function([this, node](Args& a) {
      if (calls_ >= kMaxCallDepth)
        throw Error("macro \"" + node->text + "\" called " + std::to_string(kMaxCallDepth) + " levels deep (endless recursion?)");
      ++calls_;
      struct Leave {
        int& calls;
        ~Leave() { --calls; }
      } leave{calls_};
      Value scope = Value::make_dict();
      for (size_t k = 0; k < node->targets.size(); ++k) {
        const Value* arg = a.get(k, node->targets[k].c_str());
        scope.set(node->targets[k], arg ? *arg : node->exprs[k] ? eval(*node->exprs[k]) : Value::undefined(node->targets[k]));
      }
      scopes_.push_back(scope);
      std::string out;
      exec(node->body, out);
      scopes_.pop_back();
      return Value::string(out);
    });
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it)
      if (const Value* v = it->get(name)) return *v;
    Value g = global_function(name);
    return g.is_undefined() ? Value::undefined(name) : g;
  }

  Args eval_args(const Expr& e, size_t first) {
    Args a;
    for (size_t k = first; k < e.args.size(); ++k) a.pos.push_back(eval(*e.args[k]));
    for (const auto& [key, x] : e.kwargs) a.kw.emplace_back(key, eval(*x));
    return a;
  }

 public:
  Value eval(const Expr& e) {
    try {
      WorkBudget::charge(1);
      return eval_inner(e);
    } catch (const LocatedError&) {
      throw;
    } catch (const Error& err) {
      error_at(e.line, e.col, err.what());
    }
  }

 private:
  Value get_item(const Value& obj, const Value& key, const Expr& e) {
    if (obj.is_undefined()) error_at(e.line, e.col, "\"" + obj.s + "\" is undefined");
    if (obj.is_dict()) {
      const Value* v = key.is_string() ? obj.get(key.s) : nullptr;
      return v ? *v : Value::undefined(key.is_string() ? key.s : to_str(key));
    }
    if ((obj.is_list() || obj.is_string()) && (key.type == Value::Type::Int || key.type == Value::Type::Bool)) {
      const List items = obj.is_list() ? *obj.list : iterate(obj);
      int64_t k = key.type == Value::Type::Int ? key.i : key.b;
      if (k < 0) k += static_cast<int64_t>(items.size());
      if (k < 0 || k >= static_cast<int64_t>(items.size())) return Value::undefined("[" + to_str(key) + "]");
      return items[static_cast<size_t>(k)];
    }
    if (key.is_string()) return bound_method(obj, key.s);
    return Value::undefined(to_str(key));
  }

  Value eval_inner(const Expr& e) {
    using K = Expr::Kind;
    switch (e.kind) {
      case K::Literal: return e.literal;
      case K::Name: return lookup(e.name);
      case K::List:
      case K::Tuple: {
        List items;
        for (const auto& x : e.args) items.push_back(eval(*x));
        return Value::make_list(std::move(items));
      }
      case K::Dict: {
        Value d = Value::make_dict();
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) d.set(to_str(eval(*e.args[k])), eval(*e.args[k + 1]));
        return d;
      }
      case K::Attr: {
        const Value obj = eval(*e.args[0]);
        if (obj.is_undefined()) error_at(e.line, e.col, "\"" + obj.s + "\" is undefined, so it has no attribute \"" + e.name + "\"");
        if (obj.is_dict()) {
          if (const Value* v = obj.get(e.name)) return *v;
        }
        Value m = bound_method(obj, e.name);
        if (m.is_undefined()) m.s = e.name;
        return m;
      }
      case K::Index: return get_item(eval(*e.args[0]), eval(*e.args[1]), e);
      case K::Slice: {
        const Value obj = eval(*e.args[0]);
        Value parts[3];
        for (int k = 0; k < 3; ++k) {
          parts[k] = e.args[static_cast<size_t>(k) + 1] ? eval(*e.args[static_cast<size_t>(k) + 1]) : Value::none();
          if (!parts[k].is_none() && parts[k].type != Value::Type::Int) throw Error("slice indices must be integers");
        }
        if (obj.is_string()) {
          std::string out;
          for (const auto& c : slice_items(iterate(obj), &parts[0], &parts[1], &parts[2])) out += c.s;
          return Value::string(out);
        }
        if (!obj.is_list()) throw Error("cannot slice " + type_name(obj));
        return Value::make_list(slice_items(*obj.list, &parts[0], &parts[1], &parts[2]));
      }
      case K::Call: {
        const Value fn = eval(*e.args[0]);
        if (fn.type != Value::Type::Function) {
          const std::string what = e.args[0]->name.empty() ? "value" : e.args[0]->name;
          throw Error("\"" + what + "\" is not callable (" + type_name(fn) + ")");
        }
        Args a = eval_args(e, 1);
        return (*fn.fn)(a);
      }
      case K::Filter: {
        const Value subject = eval(*e.args[0]);
        Args a = eval_args(e, 1);
        return apply_filter(e.name, subject, a);
      }
      case K::Test: {
        const Value subject = eval(*e.args[0]);
        Args a = eval_args(e, 1);
        return Value::boolean(apply_test(e.name, subject, a) != e.negated);
      }
      case K::Unary: {
        const Value x = eval(*e.args[0]);
        if (e.name == "not") return Value::boolean(!truthy(x));
        if (!x.is_number() && x.type != Value::Type::Bool) throw Error("bad operand type for unary " + e.name + ": " + type_name(x));
        if (e.name == "-") {
          if (x.type == Value::Type::Float) return Value::number(-x.f);
          if (as_int(x) == INT64_MIN) int_overflow("unary -");
          return Value::integer(-as_int(x));
        }
        return x;
      }
      case K::And: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? eval(*e.args[1]) : a;
      }
      case K::Or: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? a : eval(*e.args[1]);
      }
      case K::Cond:
        if (truthy(eval(*e.args[1]))) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2]) : Value::undefined("");
      case K::Binary: return binary(e.name, eval(*e.args[0]), eval(*e.args[1]));
    }
    return Value::undefined();
  }

  static Value binary(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return Value::boolean(equal(a, b));
    if (op == "!=") return Value::boolean(!equal(a, b));
    if (op == "<") return Value::boolean(compare(a, b) < 0);
    if (op == ">") return Value::boolean(compare(a, b) > 0);
    if (op == "<=") return Value::boolean(compare(a, b) <= 0);
    if (op == ">=") return Value::boolean(compare(a, b) >= 0);
    if (op == "in" || op == "not in") {
      Args args;
      args.pos.push_back(b);
      return Value::boolean(apply_test("in", a, args) == (op == "in"));
    }
    if (op == "~") {
      const std::string x = to_str(a), y = to_str(b);
      check_string_size(x.size() + y.size());
      return Value::string(x + y);
    }
    const bool nums = (a.is_number() || a.type == Value::Type::Bool) && (b.is_number() || b.type == Value::Type::Bool);
    const bool ints = nums && a.type != Value::Type::Float && b.type != Value::Type::Float;
    int64_t r = 0;
    if (op == "+") {
      if (a.is_string() && b.is_string()) {
        check_string_size(a.s.size() + b.s.size());
        return Value::string(a.s + b.s);
      }
      if (a.is_list() && b.is_list()) {
        List items = *a.list;
        items.insert(items.end(), b.list->begin(), b.list->end());
        return Value::make_list(std::move(items));
      }
      if (ints) {
        if (__builtin_add_overflow(as_int(a), as_int(b), &r)) int_overflow("+");
        return Value::integer(r);
      }
      if (nums) return Value::number(a.as_double() + b.as_double());
    } else if (op == "-") {
      if (ints) {
        if (__builtin_sub_overflow(as_int(a), as_int(b), &r)) int_overflow("-");
        return Value::integer(r);
      }
      if (nums) return Value::number(a.as_double() - b.as_double());
    } else if (op == "*") {
      if (a.is_string() && b.type == Value::Type::Int) {  // Python's str * n; n <= 0 gives ""
        const size_t n = size_t(std::max<int64_t>(b.i, 0));
        check_string_size(size_t(std::min<UInt128>((UInt128)a.s.size() * n, SIZE_MAX)));
        std::string out;
        out.reserve(a.s.size() * n);
        for (size_t k = 0; k < n; ++k) out += a.s;
        return Value::string(std::move(out));
      }
      if (ints) {
        if (__builtin_mul_overflow(as_int(a), as_int(b), &r)) int_overflow("*");
        return Value::integer(r);
      }
      if (nums) return Value::number(a.as_double() * b.as_double());
    } else if (op == "/") {
      if (nums) {
        if (b.as_double() == 0) throw Error("division by zero");
        return Value::number(a.as_double() / b.as_double());
      }
    } else if (op == "//" || op == "%") {
      if (ints) {
        const int64_t x = as_int(a), y = as_int(b);
        if (y == 0) throw Error("integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) {  // the one quotient int64 cannot hold (a hardware trap)
          if (op == "%") return Value::integer(0);
          int_overflow("//");
        }
        return Value::integer(op == "%" ? py_mod(x, y) : py_floordiv(x, y));
      }
      if (nums) {
        if (b.as_double() == 0) throw Error("float division or modulo by zero");
        const double q = std::floor(a.as_double() / b.as_double());
        return Value::number(op == "//" ? q : a.as_double() - q * b.as_double());
      }
    } else if (op == "**") {
      if (ints && as_int(b) >= 0) {  // exact by repeated squaring, an error past int64
        int64_t base = as_int(a), result = 1;
        for (int64_t e = as_int(b); e > 0; e >>= 1) {
          if ((e & 1) && __builtin_mul_overflow(result, base, &result)) int_overflow("**");
          if (e > 1 && __builtin_mul_overflow(base, base, &base)) int_overflow("**");
        }
        return Value::integer(result);
      }
      if (nums) return Value::number(std::pow(a.as_double(), b.as_double()));
    }
    throw Error("unsupported operand types for " + op + ": " + type_name(a) + " and " + type_name(b));
  }

  std::vector<Value> scopes_;  // dicts, innermost last
  int calls_ = 0;              // macro calls in progress
};

}  // namespace
}  // namespace jinja

ChatTemplate::ChatTemplate(const std::string& source) {
  try {
    body_ = std::make_unique<std::vector<jinja::Node>>(jinja::parse(source));
  } catch (const Error& e) {
    fail("chat template", e.what());
  }
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const ordered_json& variables) const {
  jinja::Value globals = jinja::from_json(variables.is_object() ? variables : ordered_json::object());
  jinja::Interpreter interp(std::move(globals));
  std::string out;
  const jinja::WorkBudget budget(kMaxTemplateWork);
  try {
    interp.exec(*body_, out);
  } catch (const Error& e) {
    fail("chat template", e.what());
  }
  return out;
}

std::string render_chat(const ChatTemplate& tmpl, const Tokenizer& tok, const ordered_json& row,
                        bool add_generation_prompt) {
  if (!row.is_object() || !row.contains("messages") || !row["messages"].is_array())
    fail("", "expected an object {\"messages\": [{\"role\": ..., \"content\": ...}, ...]}");
  const auto& messages = row["messages"];
  for (size_t k = 0; k < messages.size(); ++k) {
    const auto& m = messages[k];
    const std::string where = "messages[" + std::to_string(k) + "]";
    if (!m.is_object()) fail(where, "expected an object {\"role\", \"content\"}");
    if (!m.contains("role") || !m["role"].is_string()) fail(where, "missing \"role\" (a string)");
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      fail(where, "unknown role \"" + role + "\" (expected system, user, assistant or tool)");
  }
  ordered_json vars = row;
  auto special = [&](const char* key, const std::string& value) {
    if (!vars.contains(key)) vars[key] = value;
  };
  special("bos_token", tok.bos_token());
  special("eos_token", tok.eos_token());
  vars["add_generation_prompt"] = add_generation_prompt;
  return tmpl.render(vars);
}

}  // namespace zephyr

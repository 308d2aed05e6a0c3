#include "tokenizer/jinja_value.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace zephyr::jinja {

void check_string_size(size_t bytes) {
  if (bytes > kMaxStringBytes)
    throw Error("a string of " + std::to_string(bytes) + " bytes is over the template limit of " +
                std::to_string(kMaxStringBytes >> 20) + " MiB");
}

namespace {
thread_local WorkBudget* current_budget = nullptr;
}  // namespace

WorkBudget::WorkBudget(int64_t limit) : limit_(limit), outer_(current_budget) { current_budget = this; }
WorkBudget::~WorkBudget() {
  current_budget = outer_;
  for (const auto& d : namespaces_) {
    Dict items;
    items.swap(*d);  // freed here, after the namespace no longer holds them
  }
}

void WorkBudget::track_namespace(const std::shared_ptr<Dict>& dict) {
  if (current_budget) current_budget->namespaces_.push_back(dict);
}

void WorkBudget::charge(int64_t units) {
  WorkBudget* b = current_budget;
  if (!b || (b->used_ += units) <= b->limit_) return;
  const int64_t limit = b->limit_;
  b->limit_ = INT64_MAX;  // the error's own strings must not fail again
  throw Error("the template did more than " + std::to_string(limit) +
              " units of work (a loop that does not end, or a string or list that keeps doubling?)");
}

namespace {
void check_depth(int depth) {
  if (depth > kMaxValueDepth) throw Error("lists and dicts nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
}

// Bounds the recursion of printing and comparing: the depth recorded at construction does not see
// a namespace that was later given itself (or an ancestor) as an attribute.
thread_local int walk_depth = 0;
struct WalkGuard {
  WalkGuard() { check_depth(++walk_depth); }
  ~WalkGuard() { --walk_depth; }
  WalkGuard(const WalkGuard&) = delete;
  WalkGuard& operator=(const WalkGuard&) = delete;
};
}  // namespace

// An item costs 4 units: copying lists (a list doubling in a loop) is ~100x slower than a unit's
// evaluation, so the limit stays near a second however the work is spent.
Value Value::make_list(List items) {
  WorkBudget::charge(4 * int64_t(items.size()));
  Value v;
  v.type = Type::List;
  for (const auto& x : items) v.depth = std::max(v.depth, x.depth + 1);
  v.depth = std::max(v.depth, 1);
  check_depth(v.depth);
  v.list = std::make_shared<List>(std::move(items));
  return v;
}

Value Value::make_dict(Dict items) {
  WorkBudget::charge(4 * int64_t(items.size()));
  Value v;
  v.type = Type::Dict;
  for (const auto& [k, x] : items) v.depth = std::max(v.depth, x.depth + 1);
  v.depth = std::max(v.depth, 1);
  check_depth(v.depth);
  v.dict = std::make_shared<Dict>(std::move(items));
  return v;
}

const Value* Value::get(const std::string& key) const {
  if (type != Type::Dict) return nullptr;
  for (const auto& [k, v] : *dict)
    if (k == key) return &v;
  return nullptr;
}

void Value::set(const std::string& key, Value v) {
  depth = std::max(depth, v.depth + 1);
  check_depth(depth);
  for (auto& [k, old] : *dict)
    if (k == key) {
      old = std::move(v);
      return;
    }
  dict->emplace_back(key, std::move(v));
}

bool truthy(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined:
    case Value::Type::None: return false;
    case Value::Type::Bool: return v.b;
    case Value::Type::Int: return v.i != 0;
    case Value::Type::Float: return v.f != 0;
    case Value::Type::String: return !v.s.empty();
    case Value::Type::List: return !v.list->empty();
    case Value::Type::Dict: return v.is_namespace || !v.dict->empty();
    case Value::Type::Function: return true;
  }
  return false;
}

bool equal(const Value& a, const Value& b) {
  const WalkGuard guard;
  if (a.type == Value::Type::Int && b.type == Value::Type::Int) return a.i == b.i;  // exact past 2^53
  const bool an = a.is_number() || a.type == Value::Type::Bool, bn = b.is_number() || b.type == Value::Type::Bool;
  if (an && bn) return a.as_double() == b.as_double();
  if (a.type != b.type) return false;
  switch (a.type) {
    case Value::Type::Undefined:
    case Value::Type::None: return true;
    case Value::Type::String: return a.s == b.s;
    case Value::Type::List:
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!equal((*a.list)[k], (*b.list)[k])) return false;
      return true;
    case Value::Type::Dict:
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [k, v] : *a.dict) {
        const Value* o = b.get(k);
        if (!o || !equal(v, *o)) return false;
      }
      return true;
    default: return a.fn == b.fn;
  }
}

int compare(const Value& a, const Value& b) {
  const WalkGuard guard;
  if (a.type == Value::Type::Int && b.type == Value::Type::Int) return a.i < b.i ? -1 : a.i > b.i ? 1 : 0;
  const bool an = a.is_number() || a.type == Value::Type::Bool, bn = b.is_number() || b.type == Value::Type::Bool;
  if (an && bn) return a.as_double() < b.as_double() ? -1 : a.as_double() > b.as_double() ? 1 : 0;
  if (a.is_string() && b.is_string()) return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;  // UTF-8 byte order = code point order
  if (a.is_list() && b.is_list()) {
    for (size_t k = 0; k < a.list->size() && k < b.list->size(); ++k)
      if (int c = compare((*a.list)[k], (*b.list)[k])) return c;
    return a.list->size() < b.list->size() ? -1 : a.list->size() > b.list->size() ? 1 : 0;
  }
  throw Error("cannot order " + type_name(a) + " and " + type_name(b));
}

namespace {

std::string float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  // Python's repr: the shortest string that round-trips, always with a '.' or exponent.
  char buf[32];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  std::string s = buf;
  // Python writes exponents as %g does ("1e+20", "1e-05"); plain integral values get ".0".
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string quote_python(const std::string& s) {
  // Python picks single quotes unless the string contains ' and no ".
  const bool has_single = s.find('\'') != std::string::npos, has_double = s.find('"') != std::string::npos;
  const char q = has_single && !has_double ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == q || c == '\\') { out += '\\'; out += static_cast<char>(c); }
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7F) { char buf[8]; std::snprintf(buf, sizeof buf, "\\x%02x", c); out += buf; }
    else out += static_cast<char>(c);
  }
  return out + q;
}

void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void json_dump(std::string& out, const Value& v, int indent, int depth) {
  const WalkGuard guard;
  auto newline = [&](int d) {
    if (indent < 0) return;
    check_string_size(out.size() + 1 + size_t(indent) * size_t(d));
    out += '\n';
    out.append(size_t(indent) * size_t(d), ' ');
  };
  const char* item_sep = indent < 0 ? ", " : ",";
  switch (v.type) {
    case Value::Type::Undefined:
    case Value::Type::None: out += "null"; break;
    case Value::Type::Bool: out += v.b ? "true" : "false"; break;
    case Value::Type::Int: out += std::to_string(v.i); break;
    case Value::Type::Float:
      out += std::isnan(v.f) ? "NaN" : std::isinf(v.f) ? (v.f > 0 ? "Infinity" : "-Infinity") : float_repr(v.f);
      break;
    case Value::Type::String: json_string(out, v.s); break;
    case Value::Type::List:
      if (v.list->empty()) { out += "[]"; break; }
      out += '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += item_sep;
        newline(depth + 1);
        json_dump(out, (*v.list)[k], indent, depth + 1);
        check_string_size(out.size());
      }
      newline(depth);
      out += ']';
      break;
    case Value::Type::Dict:
      if (v.dict->empty()) { out += "{}"; break; }
      out += '{';
      for (size_t k = 0; k < v.dict->size(); ++k) {
        if (k) out += item_sep;
        newline(depth + 1);
        json_string(out, (*v.dict)[k].first);
        out += ": ";
        json_dump(out, (*v.dict)[k].second, indent, depth + 1);
        check_string_size(out.size());
      }
      newline(depth);
      out += '}';
      break;
    case Value::Type::Function: throw Error("a function is not JSON serializable");
  }
}

}  // namespace

std::string repr(const Value& v) {
  const WalkGuard guard;
  switch (v.type) {
    case Value::Type::String: return quote_python(v.s);
    case Value::Type::List: {
      std::string out = "[";
      for (size_t k = 0; k < v.list->size(); ++k) {
        out += (k ? ", " : "") + repr((*v.list)[k]);
        check_string_size(out.size());
      }
      return out + "]";
    }
    case Value::Type::Dict: {
      std::string out = "{";
      for (size_t k = 0; k < v.dict->size(); ++k) {
        out += (k ? ", " : "") + quote_python((*v.dict)[k].first) + ": " + repr((*v.dict)[k].second);
        check_string_size(out.size());
      }
      return out + "}";
    }
    default: return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined: return "";
    case Value::Type::None: return "None";
    case Value::Type::Bool: return v.b ? "True" : "False";
    case Value::Type::Int: return std::to_string(v.i);
    case Value::Type::Float: return float_repr(v.f);
    case Value::Type::String: return v.s;
    case Value::Type::Function: return "<function>";
    default: return repr(v);
  }
}

std::string to_json(const Value& v, int indent) {
  std::string out;
  json_dump(out, v, indent, 0);
  return out;
}

std::string type_name(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined: return "undefined";
    case Value::Type::None: return "none";
    case Value::Type::Bool: return "bool";
    case Value::Type::Int: return "int";
    case Value::Type::Float: return "float";
    case Value::Type::String: return "string";
    case Value::Type::List: return "list";
    case Value::Type::Dict: return "dict";
    case Value::Type::Function: return "function";
  }
  return "?";
}

Value from_json(const ordered_json& j) {
  switch (j.type()) {
    case ordered_json::value_t::null: return Value::none();
    case ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
    case ordered_json::value_t::number_integer: return Value::integer(j.get<int64_t>());
    case ordered_json::value_t::number_unsigned:  // past int64 it would wrap negative; Python keeps it, a float comes closest
      return j.get<uint64_t>() > uint64_t(INT64_MAX) ? Value::number(double(j.get<uint64_t>())) : Value::integer(j.get<int64_t>());
    case ordered_json::value_t::number_float: return Value::number(j.get<double>());
    case ordered_json::value_t::string: return Value::string(j.get<std::string>());
    case ordered_json::value_t::array: {
      List items;
      for (const auto& x : j) items.push_back(from_json(x));
      return Value::make_list(std::move(items));
    }
    case ordered_json::value_t::object: {
      Dict items;
      for (auto it = j.begin(); it != j.end(); ++it) items.emplace_back(it.key(), from_json(it.value()));
      return Value::make_dict(std::move(items));
    }
    default: return Value::none();
  }
}

}  // namespace zephyr::jinja

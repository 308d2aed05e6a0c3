#include "tokenizer/jinja_builtins.h"

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <ctime>

#include "core/error.h"
#include "core/utf8.h"

namespace zephyr::jinja {

// Exact products and differences of 64-bit values (a GCC/Clang extension, hence the marker).
__extension__ typedef __int128 Int128;
__extension__ typedef unsigned __int128 UInt128;

namespace {

const std::string& need_string(const Value& v, const char* what) {
  if (!v.is_string()) throw Error(std::string(what) + " expects a string, got " + type_name(v));
  return v.s;
}

int64_t need_int(const Value* v, int64_t fallback, const char* what) {
  if (!v || v->is_none()) return fallback;
  if (v->type == Value::Type::Int) return v->i;
  if (v->type == Value::Type::Bool) return v->b;
  throw Error(std::string(what) + " expects an integer, got " + type_name(*v));
}

bool is_space_cp(uint32_t cp) {
  if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F) || cp == 0x85) return true;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

std::vector<uint32_t> codepoints(const std::string& s) {
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < s.size();) cps.push_back(utf8::next_codepoint(s, i));
  return cps;
}

std::string from_codepoints(const std::vector<uint32_t>& cps, size_t b, size_t e) {
  std::string out;
  for (size_t k = b; k < e; ++k) utf8::append_codepoint(out, cps[k]);
  return out;
}

// Python's str.strip / lstrip / rstrip, with optional characters to strip.
std::string py_strip(const std::string& s, const Value* chars, bool left, bool right) {
  const auto cps = codepoints(s);
  std::vector<uint32_t> set;
  const bool custom = chars && !chars->is_none() && !chars->is_undefined();
  if (custom) set = codepoints(need_string(*chars, "strip"));
  auto strip_it = [&](uint32_t cp) { return custom ? std::find(set.begin(), set.end(), cp) != set.end() : is_space_cp(cp); };
  size_t b = 0, e = cps.size();
  if (left) while (b < e && strip_it(cps[b])) ++b;
  if (right) while (e > b && strip_it(cps[e - 1])) --e;
  return from_codepoints(cps, b, e);
}

std::string map_case(const std::string& s, int mode) {  // 0 lower, 1 upper, 2 title, 3 capitalize
  std::string out;
  bool prev_cased = false, first = true;
  for (size_t i = 0; i < s.size();) {
    const auto cp = static_cast<utf8proc_int32_t>(utf8::next_codepoint(s, i));
    utf8proc_int32_t r = cp;
    if (mode == 0) r = utf8proc_tolower(cp);
    else if (mode == 1) r = utf8proc_toupper(cp);
    else if (mode == 2) r = prev_cased ? utf8proc_tolower(cp) : utf8proc_toupper(cp);
    else r = first ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
    const auto cat = utf8proc_category(cp);
    prev_cased = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
    first = false;
    utf8::append_codepoint(out, static_cast<uint32_t>(r));
  }
  return out;
}

Value py_split(const std::string& s, const Value* sep, int64_t maxsplit) {
  List parts;
  if (!sep || sep->is_none()) {
    const auto cps = codepoints(s);
    size_t i = 0;
    while (i < cps.size()) {
      while (i < cps.size() && is_space_cp(cps[i])) ++i;
      if (i == cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        size_t e = cps.size();
        while (e > i && is_space_cp(cps[e - 1])) --e;
        parts.push_back(Value::string(from_codepoints(cps, i, e)));
        break;
      }
      size_t j = i;
      while (j < cps.size() && !is_space_cp(cps[j])) ++j;
      parts.push_back(Value::string(from_codepoints(cps, i, j)));
      i = j;
    }
    return Value::make_list(std::move(parts));
  }
  const std::string& d = need_string(*sep, "split");
  if (d.empty()) throw Error("split: empty separator");
  size_t pos = 0;
  for (size_t hit; (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) && (hit = s.find(d, pos)) != std::string::npos; pos = hit + d.size())
    parts.push_back(Value::string(s.substr(pos, hit - pos)));
  parts.push_back(Value::string(s.substr(pos)));
  return Value::make_list(std::move(parts));
}

bool affix_match(const std::string& s, const Value& arg, bool prefix) {
  auto one = [&](const std::string& a) {
    return prefix ? s.compare(0, a.size(), a) == 0 && s.size() >= a.size()
                  : s.size() >= a.size() && s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (arg.is_list()) {
    for (const auto& x : *arg.list)
      if (one(need_string(x, prefix ? "startswith" : "endswith"))) return true;
    return false;
  }
  return one(need_string(arg, prefix ? "startswith" : "endswith"));
}

std::string replace_count(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  size_t pos = 0;
  int64_t n = 0;
  if (from.empty()) return s;
  for (size_t hit; (count < 0 || n < count) && (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size(), ++n) {
    out.append(s, pos, hit - pos);
    out += to;
    check_string_size(out.size());
  }
  out.append(s, pos, std::string::npos);
  return out;
}

Value attribute(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const Value* next = cur.get(key);
    cur = next ? *next : Value::undefined(key);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

int64_t length_of(const Value& v) {
  switch (v.type) {
    case Value::Type::String: return static_cast<int64_t>(codepoints(v.s).size());
    case Value::Type::List: return static_cast<int64_t>(v.list->size());
    case Value::Type::Dict: return static_cast<int64_t>(v.dict->size());
    case Value::Type::Undefined: return 0;
    default: throw Error("object of type " + type_name(v) + " has no length");
  }
}

}  // namespace

const Value* Args::get(size_t i, const char* name) const { return i < pos.size() ? &pos[i] : keyword(name); }

const Value* Args::keyword(const char* name) const {
  for (const auto& [k, v] : kw)
    if (k == name) return &v;
  return nullptr;
}

List iterate(const Value& v) {
  switch (v.type) {
    case Value::Type::List: return *v.list;
    case Value::Type::Dict: {
      List keys;
      if (!v.is_namespace)
        for (const auto& [k, _] : *v.dict) keys.push_back(Value::string(k));
      return keys;
    }
    case Value::Type::String: {
      List chars;
      for (size_t i = 0; i < v.s.size();) {
        const size_t b = i;
        utf8::next_codepoint(v.s, i);
        chars.push_back(Value::string(v.s.substr(b, i - b)));
      }
      return chars;
    }
    case Value::Type::Undefined: return {};
    default: throw Error("object of type " + type_name(v) + " is not iterable");
  }
}

bool apply_test(const std::string& name, const Value& v, Args& args) {
  const Value* a = args.get(0, "value");
  auto need_arg = [&]() -> const Value& {
    if (!a) throw Error("test \"" + name + "\" needs an argument");
    return *a;
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.type == Value::Type::Bool;
  if (name == "true") return v.type == Value::Type::Bool && v.b;
  if (name == "false") return v.type == Value::Type::Bool && !v.b;
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.type == Value::Type::Int;
  if (name == "float") return v.type == Value::Type::Float;
  if (name == "mapping") return v.is_dict();
  if (name == "sequence") return v.is_list() || v.is_string() || v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_string() || v.is_dict();
  if (name == "callable") return v.type == Value::Type::Function;
  if (name == "even") return need_int(&v, 0, "even") % 2 == 0;
  if (name == "odd") return need_int(&v, 0, "odd") % 2 != 0;
  if (name == "divisibleby") { const int64_t d = need_int(&need_arg(), 1, "divisibleby"); return d != 0 && need_int(&v, 0, "divisibleby") % d == 0; }
  if (name == "eq" || name == "equalto" || name == "==") return equal(v, need_arg());
  if (name == "ne" || name == "!=") return !equal(v, need_arg());
  if (name == "lt" || name == "lessthan" || name == "<") return compare(v, need_arg()) < 0;
  if (name == "le" || name == "<=") return compare(v, need_arg()) <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return compare(v, need_arg()) > 0;
  if (name == "ge" || name == ">=") return compare(v, need_arg()) >= 0;
  if (name == "sameas") return equal(v, need_arg()) && v.type == need_arg().type;
  if (name == "in") {
    const Value& c = need_arg();
    if (c.is_string()) return v.is_string() && c.s.find(v.s) != std::string::npos;
    for (const auto& x : iterate(c)) if (equal(x, v)) return true;
    return false;
  }
  if (name == "lower") return v.is_string() && map_case(v.s, 0) == v.s;
  if (name == "upper") return v.is_string() && map_case(v.s, 1) == v.s;
  throw Error("unknown test \"" + name + "\"");
}

Value apply_filter(const std::string& name, const Value& v, Args& args) {
  if (name == "trim") return Value::string(py_strip(need_string(v, "trim"), args.get(0, "chars"), true, true));
  if (name == "length" || name == "count") return Value::integer(length_of(v));
  if (name == "upper") return Value::string(map_case(need_string(v, "upper"), 1));
  if (name == "lower") return Value::string(map_case(need_string(v, "lower"), 0));
  if (name == "title") return Value::string(map_case(need_string(v, "title"), 2));
  if (name == "capitalize") return Value::string(map_case(need_string(v, "capitalize"), 3));
  if (name == "string") return Value::string(to_str(v));
  if (name == "safe") return v;
  if (name == "tojson") {
    const Value* indent = args.get(0, "indent");
    const int64_t width = indent && !indent->is_none() ? need_int(indent, 0, "tojson") : -1;
    check_string_size(size_t(std::max<int64_t>(width, 0)));  // before it becomes an int
    return Value::string(to_json(v, static_cast<int>(width)));
  }
  if (name == "default" || name == "d") {
    const Value* def = args.get(0, "default_value");
    const Value* boolean = args.get(1, "boolean");
    const bool use_default = v.is_undefined() || (boolean && truthy(*boolean) && !truthy(v));
    return use_default ? (def ? *def : Value::string("")) : v;
  }
  if (name == "first" || name == "last") {
    const List items = iterate(v);
    if (items.empty()) return Value::undefined("first");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") return Value::make_list(iterate(v));
  if (name == "reverse") {
    if (v.is_string()) {
      auto cps = codepoints(v.s);
      std::reverse(cps.begin(), cps.end());
      return Value::string(from_codepoints(cps, 0, cps.size()));
    }
    List items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::make_list(std::move(items));
  }
  if (name == "join") {
    const Value* sep = args.get(0, "d");
    const Value* attr = args.get(1, "attribute");
    std::string out;
    bool first = true;
    for (const auto& x : iterate(v)) {
      if (!first && sep) out += to_str(*sep);
      first = false;
      out += to_str(attr ? attribute(x, to_str(*attr)) : x);
      check_string_size(out.size());
    }
    return Value::string(out);
  }
  if (name == "int") {
    if (v.type == Value::Type::Float) return Value::integer(static_cast<int64_t>(v.f));
    if (v.is_string()) { try { return Value::integer(std::stoll(v.s)); } catch (...) { return Value::integer(0); } }
    return Value::integer(need_int(&v, 0, "int"));
  }
  if (name == "float") {
    if (v.is_string()) { try { return Value::number(std::stod(v.s)); } catch (...) { return Value::number(0); } }
    return Value::number(v.as_double());
  }
  if (name == "abs") return v.type == Value::Type::Int ? Value::integer(std::llabs(v.i)) : Value::number(std::fabs(v.as_double()));
  if (name == "round") {
    const int64_t prec = need_int(args.get(0, "precision"), 0, "round");
    const double scale = std::pow(10.0, static_cast<double>(prec));
    return Value::number(std::round(v.as_double() * scale) / scale);
  }
  if (name == "replace") {
    const Value* from = args.get(0, "old");
    const Value* to = args.get(1, "new");
    if (!from || !to) throw Error("replace needs old and new");
    return Value::string(replace_count(need_string(v, "replace"), need_string(*from, "replace"), need_string(*to, "replace"),
                                       need_int(args.get(2, "count"), -1, "replace")));
  }
  if (name == "items") {
    if (!v.is_dict()) throw Error("items expects a dict");
    List out;
    for (const auto& [k, x] : *v.dict) out.push_back(Value::make_list({Value::string(k), x}));
    return Value::make_list(std::move(out));
  }
  if (name == "unique") {
    List out;
    for (const auto& x : iterate(v))
      if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return equal(x, y); })) out.push_back(x);
    return Value::make_list(std::move(out));
  }
  if (name == "sort") {
    List items = iterate(v);
    const Value* rev = args.get(0, "reverse");
    const Value* attr = args.get(2, "attribute");
    std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
      return attr ? compare(attribute(a, to_str(*attr)), attribute(b, to_str(*attr))) < 0 : compare(a, b) < 0;
    });
    if (rev && truthy(*rev)) std::reverse(items.begin(), items.end());
    return Value::make_list(std::move(items));
  }
  if (name == "min" || name == "max" || name == "sum") {
    const List items = iterate(v);
    if (name == "sum") {
      Value acc = Value::integer(0);
      for (const auto& x : items)
        acc = (acc.type == Value::Type::Int && x.type == Value::Type::Int) ? Value::integer(acc.i + x.i) : Value::number(acc.as_double() + x.as_double());
      return acc;
    }
    if (items.empty()) return Value::undefined(name);
    Value best = items[0];
    for (const auto& x : items)
      if ((name == "min") == (compare(x, best) < 0) && !equal(x, best)) best = x;
    return best;
  }
  if (name == "map") {
    List out;
    const Value* attr = args.keyword("attribute");
    if (attr) {
      for (const auto& x : iterate(v)) out.push_back(attribute(x, to_str(*attr)));
    } else {
      if (args.pos.empty()) throw Error("map needs a filter name or attribute=");
      const std::string filter = need_string(args.pos[0], "map");
      Args rest;
      rest.pos.assign(args.pos.begin() + 1, args.pos.end());
      rest.kw = args.kw;
      for (const auto& x : iterate(v)) out.push_back(apply_filter(filter, x, rest));
    }
    return Value::make_list(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    const bool by_attr = name.ends_with("attr");
    const bool keep = name.starts_with("select");
    size_t k = 0;
    std::string attr;
    if (by_attr) {
      if (args.pos.empty()) throw Error(name + " needs an attribute name");
      attr = need_string(args.pos[k++], name.c_str());
    }
    const std::string test = k < args.pos.size() ? need_string(args.pos[k++], name.c_str()) : "";
    Args rest;
    rest.pos.assign(args.pos.begin() + static_cast<long>(std::min(k, args.pos.size())), args.pos.end());
    List out;
    for (const auto& x : iterate(v)) {
      const Value subject = by_attr ? attribute(x, attr) : x;
      const bool ok = test.empty() ? truthy(subject) : apply_test(test, subject, rest);
      if (ok == keep) out.push_back(x);
    }
    return Value::make_list(std::move(out));
  }
  if (name == "indent") {
    const int64_t width = need_int(args.get(0, "width"), 4, "indent");
    const Value* first = args.get(1, "first");
    const std::string& s = need_string(v, "indent");
    const size_t pads = size_t(std::count(s.begin(), s.end(), '\n')) + 1, w = size_t(std::max<int64_t>(0, width));
    check_string_size(size_t(std::min<UInt128>(s.size() + (UInt128)pads * w, SIZE_MAX)));
    const std::string pad(w, ' ');
    std::string out = first && truthy(*first) ? pad : "";
    for (size_t i = 0; i < s.size(); ++i) {
      out += s[i];
      if (s[i] == '\n' && i + 1 < s.size() && s[i + 1] != '\n') out += pad;
    }
    return Value::string(out);
  }
  throw Error("unknown filter \"" + name + "\"");
}

Value bound_method(const Value& obj, const std::string& name) {
  auto method = [&](auto fn) { return Value::function([obj, fn](Args& a) { return fn(obj, a); }); };
  if (obj.is_string()) {
    if (name == "strip" || name == "lstrip" || name == "rstrip")
      return method([name](const Value& o, Args& a) {
        return Value::string(py_strip(o.s, a.get(0, "chars"), name != "rstrip", name != "lstrip"));
      });
    if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
      const int mode = name == "lower" ? 0 : name == "upper" ? 1 : name == "title" ? 2 : 3;
      return method([mode](const Value& o, Args&) { return Value::string(map_case(o.s, mode)); });
    }
    if (name == "startswith" || name == "endswith")
      return method([name](const Value& o, Args& a) {
        const Value* x = a.get(0, "prefix");
        if (!x) throw Error(name + " needs an argument");
        return Value::boolean(affix_match(o.s, *x, name == "startswith"));
      });
    if (name == "split")
      return method([](const Value& o, Args& a) { return py_split(o.s, a.get(0, "sep"), need_int(a.get(1, "maxsplit"), -1, "split")); });
    if (name == "replace")
      return method([](const Value& o, Args& a) {
        const Value* from = a.get(0, "old");
        const Value* to = a.get(1, "new");
        if (!from || !to) throw Error("replace needs two arguments");
        return Value::string(replace_count(o.s, need_string(*from, "replace"), need_string(*to, "replace"), need_int(a.get(2, "count"), -1, "replace")));
      });
    if (name == "find" || name == "count")
      return method([name](const Value& o, Args& a) {
        const Value* x = a.get(0, "sub");
        if (!x) throw Error(name + " needs an argument");
        const std::string& sub = need_string(*x, name.c_str());
        if (name == "find") {
          const size_t p = o.s.find(sub);
          return Value::integer(p == std::string::npos ? -1 : static_cast<int64_t>(codepoints(o.s.substr(0, p)).size()));
        }
        int64_t n = 0;
        if (!sub.empty())
          for (size_t p = o.s.find(sub); p != std::string::npos; p = o.s.find(sub, p + sub.size())) ++n;
        return Value::integer(n);
      });
    if (name == "join")
      return method([](const Value& o, Args& a) {
        const Value* x = a.get(0, "iterable");
        if (!x) throw Error("join needs an argument");
        std::string out;
        bool first = true;
        for (const auto& item : iterate(*x)) {
          if (!first) out += o.s;
          first = false;
          out += need_string(item, "join");
          check_string_size(out.size());
        }
        return Value::string(out);
      });
    if (name == "isdigit" || name == "isspace" || name == "isalpha")
      return method([name](const Value& o, Args&) {
        const auto cps = codepoints(o.s);
        if (cps.empty()) return Value::boolean(false);
        for (uint32_t cp : cps) {
          const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
          const bool ok = name == "isspace" ? is_space_cp(cp)
                          : name == "isdigit" ? cat == UTF8PROC_CATEGORY_ND
                                              : (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO);
          if (!ok) return Value::boolean(false);
        }
        return Value::boolean(true);
      });
  }
  if (obj.is_dict() && !obj.is_namespace) {
    if (name == "items") return method([](const Value& o, Args& a) { return apply_filter("items", o, a); });
    if (name == "keys") return method([](const Value& o, Args&) { return Value::make_list(iterate(o)); });
    if (name == "values")
      return method([](const Value& o, Args&) {
        List out;
        for (const auto& [_, x] : *o.dict) out.push_back(x);
        return Value::make_list(std::move(out));
      });
    if (name == "get")
      return method([](const Value& o, Args& a) {
        const Value* key = a.get(0, "key");
        if (!key) throw Error("get needs a key");
        const Value* found = key->is_string() ? o.get(key->s) : nullptr;
        const Value* def = a.get(1, "default");
        return found ? *found : def ? *def : Value::none();
      });
  }
  return Value::undefined(name);
}

Value global_function(const std::string& name) {
  if (name == "range")
    return Value::function([](Args& a) {
      int64_t start = 0, stop = 0, step = 1;
      if (a.pos.size() == 1) stop = need_int(&a.pos[0], 0, "range");
      else if (a.pos.size() >= 2) {
        start = need_int(&a.pos[0], 0, "range");
        stop = need_int(&a.pos[1], 0, "range");
        if (a.pos.size() > 2) step = need_int(&a.pos[2], 1, "range");
      }
      if (step == 0) throw Error("range() step must not be zero");
      // In 128 bits: the extremes of int64 would overflow the difference.
      if ((Int128(stop) - start) / step > 1000000) throw Error("range() is too long (over 1000000 items)");
      List out;
      const Int128 span = Int128(stop) - start;
      const int64_t n = (step > 0 ? span > 0 : span < 0) ? int64_t((span + (step > 0 ? step - 1 : step + 1)) / step) : 0;
      for (int64_t k = 0; k < n; ++k) out.push_back(Value::integer(int64_t(start + Int128(k) * step)));
      return Value::make_list(std::move(out));
    });
  if (name == "namespace" || name == "dict")
    return Value::function([name](Args& a) {
      Value d = Value::make_dict();
      d.is_namespace = name == "namespace";
      if (d.is_namespace) WorkBudget::track_namespace(d.dict);
      for (const auto& p : a.pos)
        if (p.is_dict()) for (const auto& [k, x] : *p.dict) d.set(k, x);
      for (const auto& [k, x] : a.kw) d.set(k, x);
      return d;
    });
  if (name == "raise_exception")
    return Value::function([](Args& a) -> Value {
      throw Error("raise_exception: " + (a.pos.empty() ? std::string() : to_str(a.pos[0])));
    });
  if (name == "strftime_now")
    return Value::function([](Args& a) {
      const std::string fmt = a.pos.empty() ? std::string("%Y-%m-%d") : need_string(a.pos[0], "strftime_now");
      const std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[256];
      const size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
      return Value::string(std::string(buf, n));
    });
  return Value::undefined(name);
}

}  // namespace zephyr::jinja

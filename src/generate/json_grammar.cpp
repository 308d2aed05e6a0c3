#include "generate/json_grammar.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "core/error.h"

namespace zephyr {

namespace {

constexpr int kMaxDepth = 64;         // schema nesting
constexpr uint8_t kMaxWhitespace = 32;  // whitespace bytes in a row
constexpr int32_t kMaxNumberBytes = 32;
constexpr int64_t kUnreachable = int64_t(1) << 40;

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  fail_field("response_format", (where.empty() ? "schema" : "schema at " + where) + ": " + what);
}

bool is_ws(uint8_t b) { return b == ' ' || b == '\n' || b == '\t' || b == '\r'; }
bool is_digit(uint8_t b) { return b >= '0' && b <= '9'; }
bool is_hex(uint8_t b) { return is_digit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F'); }

// Frame phases.
enum : uint8_t { kRootStart = 0, kRootDone = 1 };
enum : uint8_t { kObjFirst = 0, kObjKey, kObjAfterKey, kObjColon, kObjValue, kObjComma };
enum : uint8_t { kArrFirst = 0, kArrItem, kArrComma };
enum : uint8_t { kStrIn = 0, kStrEsc, kStrHex, kStrUtf8 };
enum : uint8_t { kNumStart = 0, kNumMinus, kNumInt, kNumZero, kNumDot, kNumFrac, kNumE, kNumESign, kNumExp };

enum : uint8_t { kStrDone = 255 };
constexpr int32_t kRootNode = -1, kKeyString = -2;  // frames without a schema node
constexpr size_t kMaxThreads = 256;

// One byte inside a string (after its opening quote): JSON's escapes, no control characters, and
// well-formed UTF-8 (no overlong forms or surrogates), so the text always decodes.
bool string_step(JsonFrame& f, uint8_t byte) {
  switch (f.phase) {
    case kStrIn:
      if (byte == '"') f.phase = kStrDone;
      else if (byte == '\\') f.phase = kStrEsc;
      else if (byte < 0x20) return false;
      else if (byte >= 0x80) {
        // a: continuation bytes still due; [b, c]: the range of the next one.
        f.b = 0x80, f.c = 0xBF;
        if (byte >= 0xC2 && byte <= 0xDF) f.a = 1;
        else if (byte >= 0xE0 && byte <= 0xEF) f.a = 2, f.b = byte == 0xE0 ? 0xA0 : 0x80, f.c = byte == 0xED ? 0x9F : 0xBF;
        else if (byte >= 0xF0 && byte <= 0xF4) f.a = 3, f.b = byte == 0xF0 ? 0x90 : 0x80, f.c = byte == 0xF4 ? 0x8F : 0xBF;
        else return false;
        f.phase = kStrUtf8;
      }
      return true;
    case kStrUtf8:
      if (byte < f.b || byte > f.c) return false;
      f.b = 0x80, f.c = 0xBF;
      if (--f.a == 0) f.phase = kStrIn;
      return true;
    case kStrEsc:
      if (byte == 'u') f.phase = kStrHex, f.a = 4;
      else if (std::string_view("\"\\/bfnrt").find(char(byte)) != std::string_view::npos) f.phase = kStrIn;
      else return false;
      return true;
    case kStrHex:
      if (!is_hex(byte)) return false;
      if (--f.a == 0) f.phase = kStrIn;
      return true;
    default: return false;
  }
}

bool number_complete(uint8_t phase) { return phase == kNumInt || phase == kNumZero || phase == kNumFrac || phase == kNumExp; }

const char* const kAnnotations[] = {"title", "description", "default", "examples", "$schema", "$id", "$comment", "strict"};
const char* const kKeywords[] = {"type",     "properties", "required", "additionalProperties", "items", "enum",
                                 "const",    "anyOf",      "minItems", "maxItems",             "minimum", "maximum",
                                 "$defs",    "definitions", "$ref"};

bool listed(const std::string& k, const auto& list) {
  return std::any_of(std::begin(list), std::end(list), [&](const char* s) { return k == s; });
}

std::string json_type_of(const ordered_json& v) {
  if (v.is_object()) return "object";
  if (v.is_array()) return "array";
  if (v.is_string()) return "string";
  if (v.is_boolean()) return "boolean";
  if (v.is_null()) return "null";
  if (v.is_number_integer() || v.is_number_unsigned()) return "integer";
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) return "integer";
  return "number";
}

// Decimal digits of the shortest integer in [lo, hi] (bounds of a number's value): its text length.
int64_t shortest_number(bool has_min, double lo, bool has_max, double hi) {
  if ((!has_min || lo <= 0) && (!has_max || hi >= 0)) return 1;
  const double m = has_min && lo > 0 ? std::ceil(lo) : std::ceil(-hi);
  const int64_t digits = m < 1 ? 1 : int64_t(std::floor(std::log10(m))) + 1;
  return digits + (has_max && hi < 0 ? 1 : 0);
}

JsonGrammar::Node of_kind(JsonGrammar::Kind k, int items = -1, bool free_keys = false) {
  JsonGrammar::Node n;
  n.kind = k;
  n.items = items;
  n.free_keys = free_keys;
  return n;
}

JsonGrammar::Node literal(std::string text) {
  JsonGrammar::Node n = of_kind(JsonGrammar::Kind::Literal);
  n.literal = std::move(text);
  return n;
}

}  // namespace

int JsonGrammar::add(Node n) {
  nodes_.push_back(std::move(n));
  return int(nodes_.size() - 1);
}

// Any JSON value: an Alt of a free object and array (of any values), string, number, true, false,
// null. Built once; the containers refer back to it.
int JsonGrammar::any_value() {
  if (any_ >= 0) return any_;
  any_ = add({});
  std::vector<int> alts = {add(of_kind(Kind::Object, any_, true)), add(of_kind(Kind::Array, any_)), add(of_kind(Kind::String)),
                           add(of_kind(Kind::Number))};
  for (const char* lit : {"true", "false", "null"}) alts.push_back(add(literal(lit)));
  nodes_[size_t(any_)].alts = alts;
  return any_;
}

int JsonGrammar::resolve_ref(const std::string& ref, const std::string& where, int depth) {
  for (const auto& [r, id] : refs_)
    if (r == ref) return id;
  const ordered_json* target = nullptr;
  if (ref == "#") {
    target = doc_;
  } else {
    for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
      const std::string p = prefix;
      if (ref.rfind(p, 0) != 0) continue;
      std::string name;  // JSON pointer escapes: ~1 is '/', ~0 is '~'
      for (size_t i = p.size(); i < ref.size(); ++i) {
        if (ref[i] == '~' && i + 1 < ref.size() && (ref[i + 1] == '0' || ref[i + 1] == '1')) {
          name += ref[i + 1] == '0' ? '~' : '/';
          ++i;
        } else if (ref[i] == '/') {
          bad(where, "$ref \"" + ref + "\": only \"#/$defs/NAME\" and \"#/definitions/NAME\" are supported");
        } else {
          name += ref[i];
        }
      }
      const std::string defs = p.substr(2, p.size() - 3);
      if (doc_->contains(defs) && (*doc_)[defs].is_object() && (*doc_)[defs].contains(name)) target = &(*doc_)[defs][name];
      break;
    }
  }
  if (!target) bad(where, "$ref \"" + ref + "\" does not name a schema under $defs or definitions");
  // Allocated before its body, so a reference back to it (through an object or array) resolves.
  const int id = add({});
  refs_.emplace_back(ref, id);
  const int body = compile(*target, ref.substr(1), depth + 1);
  nodes_[size_t(id)].alts = {body};
  return id;
}

int JsonGrammar::compile(const ordered_json& s, const std::string& where, int depth) {
  if (depth > kMaxDepth) bad(where, "nested deeper than " + std::to_string(kMaxDepth) + " levels");
  if (s.is_boolean()) {
    if (!s.get<bool>()) bad(where, "the schema false accepts nothing");
    return any_value();
  }
  if (!s.is_object()) bad(where, "expected a schema object, got " + std::string(s.type_name()));
  for (const auto& [k, v] : s.items())
    if (!listed(k, kKeywords) && !listed(k, kAnnotations))
      bad(where, "keyword \"" + k + "\" is not supported (supported: type, properties, required, additionalProperties, items, "
                 "enum, const, anyOf, minItems, maxItems, minimum, maximum, $defs, $ref)");
  const auto has = [&](const char* k) { return s.contains(k); };
  const auto at = [&](const char* k) { return where + "/" + k; };
  if (has("$ref")) {
    if (!s["$ref"].is_string()) bad(at("$ref"), "expected a string");
    for (const char* k : {"type", "properties", "items", "enum", "const", "anyOf"})
      if (has(k)) bad(where, "\"" + std::string(k) + "\" beside $ref is not supported");
    return resolve_ref(s["$ref"].get<std::string>(), at("$ref"), depth);
  }
  if (has("anyOf")) {
    const auto& list = s["anyOf"];
    if (!list.is_array() || list.empty()) bad(at("anyOf"), "expected a non-empty list of schemas");
    for (const char* k : {"type", "properties", "items", "enum", "const"})
      if (has(k)) bad(where, "\"" + std::string(k) + "\" beside anyOf is not supported (move it into each alternative)");
    Node alt;
    for (size_t i = 0; i < list.size(); ++i) alt.alts.push_back(compile(list[i], at("anyOf") + "/" + std::to_string(i), depth + 1));
    return add(std::move(alt));
  }
  // The types allowed: "type" as a string or list; else inferred from the keywords.
  std::vector<std::string> types;
  if (has("type")) {
    const auto& t = s["type"];
    if (t.is_string()) types.push_back(t.get<std::string>());
    else if (t.is_array() && !t.empty())
      for (const auto& x : t) {
        if (!x.is_string()) bad(at("type"), "expected a type name or a list of them");
        types.push_back(x.get<std::string>());
      }
    else bad(at("type"), "expected a type name or a list of them");
    for (const auto& name : types)
      if (name != "object" && name != "array" && name != "string" && name != "number" && name != "integer" &&
          name != "boolean" && name != "null")
        bad(at("type"), "unknown type \"" + name + "\"");
  }
  if (has("const") || has("enum")) {
    std::vector<ordered_json> values;
    if (has("const")) values.push_back(s["const"]);
    else {
      if (!s["enum"].is_array() || s["enum"].empty()) bad(at("enum"), "expected a non-empty list of values");
      for (const auto& v : s["enum"]) values.push_back(v);
    }
    Node alt;
    for (const auto& v : values) {
      const std::string t = json_type_of(v);
      const bool typed = types.empty() || std::find(types.begin(), types.end(), t) != types.end() ||
                         (t == "integer" && std::find(types.begin(), types.end(), "number") != types.end());
      if (typed) alt.alts.push_back(add(literal(v.dump())));
    }
    if (alt.alts.empty()) bad(has("const") ? at("const") : at("enum"), "no value of the allowed type");
    return alt.alts.size() == 1 ? alt.alts[0] : add(std::move(alt));
  }
  if (types.empty()) {
    if (has("properties") || has("required") || has("additionalProperties")) types = {"object"};
    else if (has("items") || has("minItems") || has("maxItems")) types = {"array"};
    else if (has("minimum") || has("maximum")) types = {"number"};
    else return any_value();
  }
  Node alt;
  for (const auto& type : types) {
    Node n;
    if (type == "object") {
      n.kind = Kind::Object;
      std::vector<std::string> required;
      if (has("required")) {
        if (!s["required"].is_array()) bad(at("required"), "expected a list of property names");
        for (const auto& r : s["required"]) {
          if (!r.is_string()) bad(at("required"), "expected a list of property names");
          required.push_back(r.get<std::string>());
        }
      }
      if (has("properties")) {
        if (!s["properties"].is_object()) bad(at("properties"), "expected an object of schemas");
        for (const auto& [k, v] : s["properties"].items()) {
          const bool req = std::find(required.begin(), required.end(), k) != required.end();
          n.props.push_back({ordered_json(k).dump(), compile(v, at("properties") + "/" + k, depth + 1), req});
        }
        for (const auto& r : required)
          if (std::none_of(n.props.begin(), n.props.end(), [&](const Property& p) { return p.key == ordered_json(r).dump(); }))
            bad(at("required"), "\"" + r + "\" is not among the properties");
      } else {
        if (!required.empty()) bad(at("required"), "required properties need \"properties\" declaring them");
        n.free_keys = true;
        const bool typed_values = has("additionalProperties") && s["additionalProperties"].is_object();
        n.items = typed_values ? compile(s["additionalProperties"], at("additionalProperties"), depth + 1) : any_value();
        if (has("additionalProperties") && s["additionalProperties"].is_boolean() && !s["additionalProperties"].get<bool>())
          n.free_keys = false;  // {} only
      }
    } else if (type == "array") {
      n.kind = Kind::Array;
      n.items = has("items") ? compile(s["items"], at("items"), depth + 1) : any_value();
      for (const char* k : {"minItems", "maxItems"})
        if (has(k) && (!s[k].is_number_integer() || s[k].get<int64_t>() < 0)) bad(at(k), "expected a non-negative integer");
      n.min_items = has("minItems") ? s["minItems"].get<int64_t>() : 0;
      n.max_items = has("maxItems") ? s["maxItems"].get<int64_t>() : -1;
      if (n.max_items >= 0 && n.min_items > n.max_items) bad(where, "minItems is larger than maxItems");
    } else if (type == "string") {
      n.kind = Kind::String;
    } else if (type == "number" || type == "integer") {
      n.kind = type == "number" ? Kind::Number : Kind::Integer;
      for (const char* k : {"minimum", "maximum"})
        if (has(k) && !s[k].is_number()) bad(at(k), "expected a number");
      n.has_min = has("minimum");
      n.has_max = has("maximum");
      if (n.has_min) n.minimum = s["minimum"].get<double>();
      if (n.has_max) n.maximum = s["maximum"].get<double>();
      if (n.has_min && n.has_max && n.minimum > n.maximum) bad(where, "minimum is larger than maximum");
      if (n.kind == Kind::Integer && n.has_min && n.has_max && std::ceil(n.minimum) > std::floor(n.maximum))
        bad(where, "no integer lies between minimum and maximum");
    } else if (type == "boolean") {
      n.alts = {add(literal("true")), add(literal("false"))};
    } else {  // null
      n.kind = Kind::Literal;
      n.literal = "null";
    }
    alt.alts.push_back(add(std::move(n)));
  }
  return alt.alts.size() == 1 ? alt.alts[0] : add(std::move(alt));
}

void JsonGrammar::compute_min_bytes() {
  for (Node& n : nodes_) n.min_bytes = kUnreachable;
  for (bool changed = true; changed;) {  // to a fixed point: references may point forward
    changed = false;
    for (Node& n : nodes_) {
      const auto m = [&](int i) { return nodes_[size_t(i)].min_bytes; };
      int64_t v = kUnreachable;
      switch (n.kind) {
        case Kind::Object: {
          v = 2;
          int64_t count = 0;
          for (const Property& p : n.props)
            if (p.required) v += int64_t(p.key.size()) + 1 + m(p.node), ++count;
          v += std::max<int64_t>(0, count - 1);
          break;
        }
        case Kind::Array: v = 2 + n.min_items * m(n.items) + std::max<int64_t>(0, n.min_items - 1); break;
        case Kind::String: v = 2; break;
        case Kind::Number: case Kind::Integer: v = shortest_number(n.has_min, n.minimum, n.has_max, n.maximum); break;
        case Kind::Literal: v = int64_t(n.literal.size()); break;
        case Kind::Alt:
          for (int a : n.alts) v = std::min(v, m(a));
          break;
      }
      v = std::min(v, kUnreachable);
      if (v != n.min_bytes) n.min_bytes = v, changed = true;
    }
  }
}

JsonGrammar JsonGrammar::from_schema(const ordered_json& schema) {
  JsonGrammar g;
  g.doc_ = &schema;
  g.root_ = g.compile(schema, "", 0);
  g.doc_ = nullptr;
  // A loop of references that reads no text ({"$ref": "#"} at the top, anyOf of itself) would
  // never start a value: refused here rather than looping in the matcher.
  std::vector<int> color(g.nodes_.size(), 0);
  std::function<void(int)> visit = [&](int i) {
    if (color[size_t(i)] == 2) return;
    if (color[size_t(i)] == 1) bad("", "a $ref loop that reads no text (recursion must pass through an object or array)");
    color[size_t(i)] = 1;
    if (g.nodes_[size_t(i)].kind == Kind::Alt)
      for (int a : g.nodes_[size_t(i)].alts) visit(a);
    color[size_t(i)] = 2;
  };
  for (size_t i = 0; i < g.nodes_.size(); ++i) visit(int(i));
  g.compute_min_bytes();
  if (g.nodes_[size_t(g.root_)].min_bytes >= kUnreachable) bad("", "no finite value satisfies the schema");
  return g;
}

JsonGrammar JsonGrammar::any_object() {
  JsonGrammar g;
  const int any = g.any_value();
  g.root_ = g.add(of_kind(Kind::Object, any, true));
  g.compute_min_bytes();
  return g;
}

// ---- The matcher.

JsonMatcher::JsonMatcher(const JsonGrammar& g) : g_(&g) { threads_.push_back({JsonFrame{}}); }

namespace {

// The magnitudes a number's text so far can still reach, as a union of intervals, against
// [minimum, maximum]: can some completion land inside?
bool number_viable(const JsonGrammar::Node& n, const JsonFrame& f) {
  if (!n.has_min && !n.has_max) return true;
  const double lo_b = n.has_min ? n.minimum : -std::numeric_limits<double>::infinity();
  const double hi_b = n.has_max ? n.maximum : std::numeric_limits<double>::infinity();
  const bool neg = f.c != 0;
  const auto hits = [&](double lo, double hi) {  // magnitudes [lo, hi]
    const double a = neg ? -hi : lo, b = neg ? -lo : hi;
    return b >= lo_b && a <= hi_b;
  };
  const bool integer = n.kind == JsonGrammar::Kind::Integer;
  const double m = f.num;
  switch (f.phase) {
    case kNumStart: case kNumMinus: return hits(0, std::numeric_limits<double>::infinity());
    case kNumZero: return integer ? hits(0, 0) : hits(0, 1);
    case kNumInt: {
      if (!integer && hits(m, m + 1)) return true;
      double scale = 1;
      for (int k = 0; k <= 18 && f.a + k <= kMaxNumberBytes; ++k, scale *= 10)
        if (hits(m * scale, (m + 1) * scale - (integer ? 1 : 0))) return true;
      return false;
    }
    case kNumDot: case kNumFrac: return hits(m, m + std::pow(10.0, -double(f.b)));
    default: return true;
  }
}

bool number_in_bounds(const JsonGrammar::Node& n, const JsonFrame& f) {
  const double v = f.c ? -f.num : f.num;
  return (!n.has_min || v >= n.minimum) && (!n.has_max || v <= n.maximum);
}

// The fewest bytes that end the number begun in f with a value in [minimum, maximum] (0: it may
// end here). The masks keep a token only when the value can still be finished in the tokens left,
// so this must be exact: "4" toward a minimum of 9 is a complete number but needs one more digit.
// f has begun (a number not begun counts as its value_min, shortest_number).
int64_t number_min_bytes(const JsonGrammar::Node& n, const JsonFrame& f) {
  if (number_complete(f.phase) && number_in_bounds(n, f)) return 0;
  if (!n.has_min && !n.has_max) return 1;
  if (f.phase >= kNumE) return kUnreachable;  // bounded numbers take no exponent
  const bool integer = n.kind == JsonGrammar::Kind::Integer;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double lo = n.has_min ? n.minimum : -kInf, hi = n.has_max ? n.maximum : kInf;
  if (f.c) std::swap(lo, hi), lo = -lo, hi = -hi;  // bounds on the magnitude of a negative number
  lo = std::max(lo, 0.0);
  // Some multiple of 10^-e in [a, b] and in [lo, hi]?
  const auto grid = [&](double a, double b, int64_t e) {
    const double s = std::pow(10.0, double(e));
    a = std::max(a, lo) * s, b = std::min(b, hi) * s;
    return a <= b && std::ceil(a - 1e-9) <= std::floor(b + 1e-9);
  };
  const int64_t room = kMaxNumberBytes - f.a;
  const double m = f.num;
  if (f.phase == kNumDot || f.phase == kNumFrac) {  // k more fraction digits
    const double step = std::pow(10.0, -double(f.b));
    for (int64_t k = f.phase == kNumDot ? 1 : 0; k <= std::min<int64_t>(room, 18); ++k)
      if (grid(m, m + step - std::pow(10.0, -double(f.b + k)), f.b + k)) return k;
    return kUnreachable;
  }
  // Integer digits so far (none at the start or after '-', "0" alone at kNumZero): k more bytes are
  // j integer digits, then for numbers optionally '.' and the rest as fraction digits.
  for (int64_t k = 1; k <= std::min<int64_t>(room, 18); ++k)
    for (int64_t j = 0; j <= k; ++j) {
      const int64_t frac = k - j - 1;  // fraction digits after a '.'
      if (j < k && (integer || frac < 1)) continue;
      double a, b;  // the integer parts reachable with j more digits
      if (f.phase == kNumInt) {
        const double sc = std::pow(10.0, double(j));
        a = m * sc, b = (m + 1) * sc - 1;
      } else if (f.phase == kNumZero) {
        if (j > 0) continue;  // nothing follows a leading 0 but the fraction
        a = b = 0;
      } else {  // after '-': j digits from scratch, no leading zero but "0" itself
        if (j == 0) continue;
        a = j == 1 ? 0 : std::pow(10.0, double(j - 1)), b = std::pow(10.0, double(j)) - 1;
      }
      if (j == k ? grid(a, b, 0) : grid(a, b + 1 - std::pow(10.0, -double(frac)), frac)) return k;
    }
  return kUnreachable;
}

// One byte of a number; false when it cannot continue the number.
bool number_step(const JsonGrammar::Node& n, JsonFrame& f, uint8_t byte) {
  if (f.a >= kMaxNumberBytes) return false;
  const bool integer = n.kind == JsonGrammar::Kind::Integer, bounded = n.has_min || n.has_max;
  const int d = byte - '0';
  uint8_t next;
  switch (f.phase) {
    case kNumStart:
      if (byte == '-') { next = kNumMinus; f.c = 1; break; }
      [[fallthrough]];
    case kNumMinus:
      if (byte == '0') next = kNumZero;
      else if (is_digit(byte)) next = kNumInt, f.num = d;
      else return false;
      break;
    case kNumInt: case kNumZero:
      if (is_digit(byte) && f.phase == kNumInt) next = kNumInt, f.num = f.num * 10 + d;
      else if (byte == '.' && !integer) next = kNumDot;
      else if ((byte == 'e' || byte == 'E') && !integer && !bounded) next = kNumE;
      else return false;
      break;
    case kNumDot: case kNumFrac:
      if (is_digit(byte)) next = kNumFrac, f.b += 1, f.num += d * std::pow(10.0, -double(f.b));
      else if ((byte == 'e' || byte == 'E') && f.phase == kNumFrac && !bounded) next = kNumE;
      else return false;
      break;
    case kNumE:
      if (byte == '+' || byte == '-') next = kNumESign;
      else if (is_digit(byte)) next = kNumExp;
      else return false;
      break;
    case kNumESign: case kNumExp:
      if (is_digit(byte)) next = kNumExp;
      else return false;
      break;
    default: return false;
  }
  f.phase = next;
  f.a += 1;
  return number_viable(n, f);
}

// The required properties from index `from` on: how many, and their bytes (key, colon, value).
std::pair<int64_t, int64_t> required_rest(const JsonGrammar& g, const JsonGrammar::Node& n, int from) {
  int64_t count = 0, bytes = 0;
  for (size_t j = size_t(std::max(0, from)); j < n.props.size(); ++j)
    if (n.props[j].required) ++count, bytes += int64_t(n.props[j].key.size()) + 1 + g.node(n.props[j].node).min_bytes;
  return {count, bytes};
}

bool can_close(const JsonGrammar::Node& n, int from) {
  if (n.free_keys) return true;
  for (size_t j = size_t(std::max(0, from)); j < n.props.size(); ++j)
    if (n.props[j].required) return false;
  return true;
}

bool has_more(const JsonGrammar::Node& n, int from) { return n.free_keys || size_t(from) < n.props.size(); }

}  // namespace

void JsonMatcher::start_value(JsonThread t, int id, uint8_t byte, std::vector<JsonThread>& out) const {
  const JsonGrammar::Node& n = g_->node(id);
  JsonFrame f;
  f.node = id;
  switch (n.kind) {
    case JsonGrammar::Kind::Alt:
      for (int a : n.alts) start_value(t, a, byte, out);
      return;
    case JsonGrammar::Kind::Object:
      if (byte != '{') return;
      f.phase = kObjFirst;
      break;
    case JsonGrammar::Kind::Array:
      if (byte != '[') return;
      f.phase = kArrFirst;
      break;
    case JsonGrammar::Kind::String:
      if (byte != '"') return;
      f.phase = kStrIn;
      break;
    case JsonGrammar::Kind::Number: case JsonGrammar::Kind::Integer:
      f.phase = kNumStart;
      if (!number_step(n, f, byte)) return;
      break;
    case JsonGrammar::Kind::Literal:
      if (uint8_t(n.literal[0]) != byte) return;
      if (n.literal.size() == 1) {  // complete already
        out.push_back(std::move(t));
        return;
      }
      f.a = 1;
      break;
  }
  t.push_back(f);
  out.push_back(std::move(t));
}

void JsonMatcher::step(const JsonThread& in, uint8_t byte, std::vector<JsonThread>& out) const {
  JsonThread t = in;
  JsonFrame& f = t.back();
  const auto whitespace = [&] {
    if (f.ws >= kMaxWhitespace) return;
    f.ws += 1;
    out.push_back(std::move(t));
  };
  if (f.node == kKeyString || (f.node >= 0 && g_->node(f.node).kind == JsonGrammar::Kind::String)) {
    if (string_step(f, byte)) {
      if (f.phase == kStrDone) t.pop_back();
      out.push_back(std::move(t));
    }
    return;
  }
  if (f.node == kRootNode) {
    if (is_ws(byte)) return whitespace();
    if (f.phase != kRootStart) return;
    f.phase = kRootDone;
    f.ws = 0;
    return start_value(std::move(t), g_->root(), byte, out);
  }
  const JsonGrammar::Node& n = g_->node(f.node);
  switch (n.kind) {
    case JsonGrammar::Kind::Object: {
      if (is_ws(byte) && f.phase != kObjKey) return whitespace();
      f.ws = 0;
      switch (f.phase) {
        case kObjFirst: case kObjComma:
          if (byte == '}' && f.phase == kObjFirst && can_close(n, f.a)) {
            t.pop_back();
            out.push_back(std::move(t));
          } else if (byte == '"' && has_more(n, f.a)) {
            if (n.free_keys) {  // any key: a string frame reads it
              f.phase = kObjAfterKey;
              JsonFrame key;
              key.node = kKeyString;
              key.phase = kStrIn;
              t.push_back(key);
              out.push_back(std::move(t));
              return;
            }
            // The next key is any declared property from a on, up to the first required one.
            for (size_t j = size_t(f.a); j < n.props.size(); ++j) {
              JsonThread c = t;
              c.back().phase = kObjKey;
              c.back().b = int32_t(j);
              c.back().c = 1;
              out.push_back(std::move(c));
              if (n.props[j].required) break;
            }
          }
          return;
        case kObjKey: {
          const std::string& key = n.props[size_t(f.b)].key;
          if (uint8_t(key[size_t(f.c)]) != byte) return;
          if (size_t(++f.c) == key.size()) f.phase = kObjAfterKey, f.a = f.b + 1;
          out.push_back(std::move(t));
          return;
        }
        case kObjAfterKey:
          if (byte != ':') return;
          f.phase = kObjColon;
          out.push_back(std::move(t));
          return;
        case kObjColon: {
          f.phase = kObjValue;
          const int value = n.free_keys ? n.items : n.props[size_t(f.b)].node;
          return start_value(std::move(t), value, byte, out);
        }
        case kObjValue:
          if (byte == ',' && has_more(n, f.a)) {
            f.phase = kObjComma;
            out.push_back(std::move(t));
          } else if (byte == '}' && can_close(n, f.a)) {
            t.pop_back();
            out.push_back(std::move(t));
          }
          return;
      }
      return;
    }
    case JsonGrammar::Kind::Array: {
      if (is_ws(byte)) return whitespace();
      f.ws = 0;
      const bool room = n.max_items < 0 || f.a < n.max_items;
      if (f.phase == kArrItem) {
        if (byte == ',' && room) {
          f.phase = kArrComma;
          out.push_back(std::move(t));
        } else if (byte == ']' && f.a >= n.min_items) {
          t.pop_back();
          out.push_back(std::move(t));
        }
        return;
      }
      if (f.phase == kArrFirst && byte == ']' && n.min_items == 0) {
        t.pop_back();
        out.push_back(std::move(t));
        return;
      }
      if (!room) return;
      f.phase = kArrItem;
      f.a += 1;
      return start_value(std::move(t), n.items, byte, out);
    }
    case JsonGrammar::Kind::Number: case JsonGrammar::Kind::Integer: {
      JsonFrame g = f;
      if (number_step(n, g, byte)) {
        f = g;
        out.push_back(std::move(t));
        return;
      }
      // Not part of the number: it ends here if it may, and the byte goes to what holds it.
      if (!number_complete(f.phase) || !number_in_bounds(n, f)) return;
      t.pop_back();
      return step(t, byte, out);
    }
    case JsonGrammar::Kind::Literal:
      if (uint8_t(n.literal[size_t(f.a)]) != byte) return;
      if (size_t(++f.a) == n.literal.size()) t.pop_back();
      out.push_back(std::move(t));
      return;
    default: return;
  }
}

int JsonMatcher::fast_step(uint8_t byte) {
  if (threads_.size() != 1) return -1;
  JsonFrame& f = threads_[0].back();
  if (f.node == kRootNode) return -1;
  const bool key_string = f.node == kKeyString;
  const JsonGrammar::Node* n = key_string ? nullptr : &g_->node(f.node);
  if (key_string || n->kind == JsonGrammar::Kind::String) {
    JsonFrame g = f;
    if (!string_step(g, byte)) return 0;
    if (g.phase == kStrDone) return -1;
    f = g;
    return 1;
  }
  switch (n->kind) {
    case JsonGrammar::Kind::Number: case JsonGrammar::Kind::Integer: {
      JsonFrame g = f;
      if (!number_step(*n, g, byte)) return -1;
      f = g;
      return 1;
    }
    case JsonGrammar::Kind::Literal:
      if (uint8_t(n->literal[size_t(f.a)]) != byte) return 0;
      if (size_t(f.a) + 1 == n->literal.size()) return -1;
      f.a += 1;
      return 1;
    case JsonGrammar::Kind::Object: case JsonGrammar::Kind::Array:
      if (f.phase == kObjKey && n->kind == JsonGrammar::Kind::Object) {
        const std::string& key = n->props[size_t(f.b)].key;
        if (uint8_t(key[size_t(f.c)]) != byte) return 0;
        if (size_t(++f.c) == key.size()) f.phase = kObjAfterKey, f.a = f.b + 1;
        return 1;
      }
      if (!is_ws(byte)) return -1;
      if (f.ws >= kMaxWhitespace) return 0;
      f.ws += 1;
      return 1;
    default: return -1;
  }
}

bool JsonMatcher::feed(uint8_t byte) {
  if (const int r = fast_step(byte); r >= 0) return r == 1;
  std::vector<JsonThread> next;
  for (const JsonThread& t : threads_) step(t, byte, next);
  if (next.empty()) return false;
  // The same parse reached twice (anyOf alternatives that agree so far) is kept once.
  threads_.clear();
  for (auto& t : next)
    if (threads_.size() < kMaxThreads && std::find(threads_.begin(), threads_.end(), t) == threads_.end()) threads_.push_back(std::move(t));
  return true;
}

bool JsonMatcher::in_string() const {
  return std::all_of(threads_.begin(), threads_.end(), [&](const JsonThread& t) {
    const JsonFrame& f = t.back();
    return (f.node == kKeyString || (f.node >= 0 && g_->node(f.node).kind == JsonGrammar::Kind::String)) && f.phase == kStrIn;
  });
}

bool JsonMatcher::feed(std::string_view bytes) {
  for (char c : bytes)
    if (!feed(uint8_t(c))) return false;
  return true;
}

namespace {

// A thread that has read a whole value: the root done, or a root number that may end here.
bool thread_complete(const JsonGrammar& g, const JsonThread& t) {
  if (t.empty() || t[0].phase != kRootDone) return false;
  if (t.size() == 1) return true;
  if (t.size() != 2 || t[1].node < 0) return false;
  const JsonGrammar::Node& n = g.node(t[1].node);
  return (n.kind == JsonGrammar::Kind::Number || n.kind == JsonGrammar::Kind::Integer) && number_complete(t[1].phase) &&
         number_in_bounds(n, t[1]);
}

}  // namespace

bool JsonMatcher::complete() const {
  return std::any_of(threads_.begin(), threads_.end(), [&](const JsonThread& t) { return thread_complete(*g_, t); });
}

bool JsonMatcher::finished() const {
  return !threads_.empty() && std::all_of(threads_.begin(), threads_.end(), [](const JsonThread& t) {
    return t.size() == 1 && t[0].phase == kRootDone;
  });
}

int64_t JsonMatcher::thread_min(const JsonThread& t) const {
  int64_t total = 0;
  for (const JsonFrame& f : t) {
    if (f.node == kRootNode) {
      total += f.phase == kRootStart ? g_->node(g_->root()).min_bytes : 0;
      continue;
    }
    if (f.node == kKeyString) {  // a free key: its close, the colon, the value and the object's close come from the object
      total += f.phase == kStrIn ? 1 : f.phase == kStrEsc ? 2 : f.a + 1;
      continue;
    }
    const JsonGrammar::Node& n = g_->node(f.node);
    const auto value_min = [&](int id) { return g_->node(id).min_bytes; };
    switch (n.kind) {
      case JsonGrammar::Kind::Object: {
        if (n.free_keys) {
          const int64_t v = value_min(n.items);
          total += f.phase == kObjFirst || f.phase == kObjValue ? 1
                   : f.phase == kObjComma                       ? 2 + 1 + v + 1
                   : f.phase == kObjAfterKey                    ? 1 + v + 1
                                                                : v + 1;  // colon read
          break;
        }
        const int from = f.phase == kObjKey ? f.b + 1 : f.a;
        const auto [count, bytes] = required_rest(*g_, n, from);
        switch (f.phase) {
          case kObjFirst: total += bytes + std::max<int64_t>(0, count - 1) + 1; break;
          case kObjComma:
            if (count > 0) {
              total += bytes + (count - 1) + 1;
            } else {  // a comma was written: some property must follow
              int64_t best = kUnreachable;
              for (size_t j = size_t(f.a); j < n.props.size(); ++j)
                best = std::min(best, int64_t(n.props[j].key.size()) + 1 + value_min(n.props[j].node));
              total += best + 1;
            }
            break;
          case kObjKey:
            total += int64_t(n.props[size_t(f.b)].key.size()) - f.c + 1 + value_min(n.props[size_t(f.b)].node) + bytes + count + 1;
            break;
          case kObjAfterKey: total += 1 + value_min(n.props[size_t(f.b)].node) + bytes + count + 1; break;
          case kObjColon: total += value_min(n.props[size_t(f.b)].node) + bytes + count + 1; break;
          default: total += bytes + count + 1; break;  // after a value
        }
        break;
      }
      case JsonGrammar::Kind::Array: {
        const int64_t v = value_min(n.items);
        if (f.phase == kArrFirst) total += n.min_items == 0 ? 1 : n.min_items * v + (n.min_items - 1) + 1;
        else if (f.phase == kArrItem) total += std::max<int64_t>(0, n.min_items - f.a) * (1 + v) + 1;
        else total += v + std::max<int64_t>(0, n.min_items - f.a - 1) * (1 + v) + 1;
        break;
      }
      case JsonGrammar::Kind::String: total += f.phase == kStrIn ? 1 : f.phase == kStrEsc ? 2 : f.a + 1; break;  // hex or UTF-8: a more
      case JsonGrammar::Kind::Number: case JsonGrammar::Kind::Integer: total += number_min_bytes(n, f); break;
      case JsonGrammar::Kind::Literal: total += int64_t(n.literal.size()) - f.a; break;
      case JsonGrammar::Kind::Alt: break;
    }
  }
  return total;
}

int64_t JsonMatcher::min_completion() const {
  int64_t best = kUnreachable;
  for (const JsonThread& t : threads_) best = std::min(best, thread_min(t));
  return best;
}

std::string JsonMatcher::key() const {
  std::string k;
  for (const JsonThread& t : threads_) {
    for (const JsonFrame& f : t) {
      const auto put = [&](const auto& v) { k.append(reinterpret_cast<const char*>(&v), sizeof v); };
      put(f.node), put(f.phase), put(f.ws), put(f.a), put(f.b), put(f.c), put(f.num);
    }
    k += '|';
  }
  return k;
}

}  // namespace zephyr

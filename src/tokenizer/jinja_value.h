// Values of the Jinja subset used by chat templates, with Python's semantics (truthiness,
// str(), ==, ordering), since transformers renders templates with Python's Jinja2.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/json_file.h"

namespace zephyr::jinja {

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion-ordered, like Python dicts
struct Args;
using Function = std::function<Value(Args&)>;

// Limits on what one render may build: a chat template is code from the internet. Strings (the
// output too) stay under kMaxStringBytes; lists and dicts nest at most kMaxValueDepth deep (JSON
// input nests at most kMaxJsonDepth), so printing, comparing and freeing them cannot overflow the
// stack, and a namespace holding itself is an error instead of endless recursion.
constexpr size_t kMaxStringBytes = size_t(64) << 20;
constexpr int kMaxValueDepth = kMaxJsonDepth + 64;
// Throws Error when a string of BYTES would pass kMaxStringBytes; called before building one.
void check_string_size(size_t bytes);

// The work of one render on this thread: each expression evaluated and each 64 string bytes built
// cost a unit, each list or dict item built 4; past the limit, Error. That bounds time (a loop of 1e9,
// nested loops) and memory (strings or lists doubling in a loop) alike. Values built outside a
// budget's lifetime (the template's variables) are free.
class WorkBudget {
 public:
  explicit WorkBudget(int64_t limit);
  ~WorkBudget();
  WorkBudget(const WorkBudget&) = delete;
  WorkBudget& operator=(const WorkBudget&) = delete;
  static void charge(int64_t units);
  // Namespaces are the only values a template can mutate, so the only ones that can hold
  // themselves (ns.me = ns): shared pointers in a cycle are never freed. The budget outlives the
  // render's values and empties every namespace at its end, which breaks any cycle.
  static void track_namespace(const std::shared_ptr<Dict>& dict);

 private:
  int64_t used_ = 0, limit_;
  WorkBudget* outer_;
  std::vector<std::shared_ptr<Dict>> namespaces_;
};

struct Value {
  enum class Type { Undefined, None, Bool, Int, Float, String, List, Dict, Function };
  Type type = Type::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                    // String; for Undefined, the name that was missing
  std::shared_ptr<List> list;       // shared: Python reference semantics
  std::shared_ptr<Dict> dict;
  std::shared_ptr<Function> fn;
  bool is_namespace = false;        // a namespace() object: its attributes may be assigned
  int depth = 0;                    // List/Dict: 1 + the deepest item's depth when it was built

  static Value undefined(std::string name = "") { Value v; v.s = std::move(name); return v; }
  static Value none() { Value v; v.type = Type::None; return v; }
  static Value boolean(bool x) { Value v; v.type = Type::Bool; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.type = Type::Int; v.i = x; return v; }
  static Value number(double x) { Value v; v.type = Type::Float; v.f = x; return v; }
  static Value string(std::string x) { WorkBudget::charge(int64_t(x.size() >> 6)); Value v; v.type = Type::String; v.s = std::move(x); return v; }
  // Both throw Error past kMaxValueDepth.
  static Value make_list(List items = {});
  static Value make_dict(Dict items = {});
  static Value function(Function f) { Value v; v.type = Type::Function; v.fn = std::make_shared<Function>(std::move(f)); return v; }

  bool is_undefined() const { return type == Type::Undefined; }
  bool is_none() const { return type == Type::None; }
  bool is_string() const { return type == Type::String; }
  bool is_number() const { return type == Type::Int || type == Type::Float; }
  bool is_list() const { return type == Type::List; }
  bool is_dict() const { return type == Type::Dict; }
  double as_double() const { return type == Type::Int ? static_cast<double>(i) : type == Type::Bool ? b : f; }

  // Dict lookup; nullptr when absent.
  const Value* get(const std::string& key) const;
  void set(const std::string& key, Value v);  // Dict only
};

bool truthy(const Value& v);
bool equal(const Value& a, const Value& b);
// Python ordering of numbers and strings; throws Error for values Python cannot order.
int compare(const Value& a, const Value& b);
// Python's str(): what {{ value }} prints.
std::string to_str(const Value& v);
// Python's repr(), used for items inside lists and dicts.
std::string repr(const Value& v);
// json.dumps(v, ensure_ascii=False, indent=indent) as transformers' tojson filter does.
std::string to_json(const Value& v, int indent = -1);
std::string type_name(const Value& v);

Value from_json(const ordered_json& j);

}  // namespace zephyr::jinja

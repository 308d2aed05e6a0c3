// Filters, tests, string/dict methods and global functions of chat-template Jinja.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace zephyr::jinja {

struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // Positional argument i, else keyword `name`, else nullptr.
  const Value* get(size_t i, const char* name) const;
  const Value* keyword(const char* name) const;  // keyword-only arguments
};

Value apply_filter(const std::string& name, const Value& subject, Args& args);
bool apply_test(const std::string& name, const Value& subject, Args& args);
// A method bound to obj (e.g. "abc".upper), or Undefined when obj has no such method.
Value bound_method(const Value& obj, const std::string& name);
// Global functions: range, namespace, dict, raise_exception, strftime_now. Undefined if unknown.
Value global_function(const std::string& name);

// Iterating a value as Jinja does: lists, dict keys, string characters.
List iterate(const Value& v);

}  // namespace zephyr::jinja

// Errors that carry their context (file, line, byte, tensor) up to the CLI, which prints one line.
#pragma once
#include <stdexcept>
#include <string>

namespace zephyr {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, std::string field = "") : std::runtime_error(what), field_(std::move(field)) {}
  // The setting or request field at fault ("temperature"), when one is: the CLI names its flag,
  // the server its JSON field.
  const std::string& field() const { return field_; }
  // The message without its "FIELD: " prefix (for a caller that names the field its own way).
  std::string reason() const { return field_.empty() ? what() : std::string(what()).substr(field_.size() + 2); }

 private:
  std::string field_;
};

// Prefixes an error with where it happened, e.g. "tokenizer.json: model.merges[3]: ...".
[[noreturn]] inline void fail(const std::string& where, const std::string& what) {
  throw Error(where.empty() ? what : where + ": " + what);
}

// An error in the value of a named setting: "FIELD: what", with field() = FIELD.
[[noreturn]] inline void fail_field(const std::string& field, const std::string& what) {
  throw Error(field + ": " + what, field);
}

}  // namespace zephyr

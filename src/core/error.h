// Errors that carry their context (file, line, byte, tensor) up to the CLI, which prints one line.
#pragma once
#include <stdexcept>
#include <string>

namespace zephyr {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Prefixes an error with where it happened, e.g. "tokenizer.json: model.merges[3]: ...".
[[noreturn]] inline void fail(const std::string& where, const std::string& what) {
  throw Error(where.empty() ? what : where + ": " + what);
}

}  // namespace zephyr

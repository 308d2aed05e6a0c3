// Unicode regular expressions for pre-tokenizer patterns (\p{L}, \p{N}, look-ahead), on PCRE2:
// tokenizer.json patterns are Oniguruma-flavoured and PCRE2 accepts the same syntax.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zephyr {

class Regex {
 public:
  explicit Regex(const std::string& pattern);  // throws Error naming the pattern and offset
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // [begin, end) byte ranges of every non-overlapping match, left to right.
  // `text` must be valid UTF-8 (the tokenizer checks it once up front).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zephyr

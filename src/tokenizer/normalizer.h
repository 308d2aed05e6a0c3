// tokenizer.json "normalizer": applied to each piece of text between added tokens.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "tokenizer/regex.h"

namespace zephyr {

class Normalizer {
 public:
  // `spec` is the JSON value (null means none); `where` names it in errors.
  static Normalizer from_json(const json& spec, const std::string& where);
  void apply(std::string& text) const;
  bool empty() const { return steps_.empty(); }

 private:
  enum class Kind { Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip };
  struct Step {
    Kind kind;
    std::string a, b;                // Prepend: a; Replace: a -> b (literal) or regex -> b
    std::shared_ptr<Regex> regex;    // Replace with a Regex pattern
    bool left = false, right = false;  // Strip
  };
  static void add(const json& spec, const std::string& where, std::vector<Step>& steps);
  std::vector<Step> steps_;
};

// Shared with decoders: replaces every occurrence of a literal or regex pattern.
std::string replace_all(const std::string& text, const std::string& from, const std::string& to);
std::string replace_regex(const std::string& text, const Regex& re, const std::string& to);

// Reads {"String": s} or {"Regex": r} pattern objects.
struct Pattern {
  std::string literal;
  std::shared_ptr<Regex> regex;
  static Pattern from_json(const json& spec, const std::string& where);
};

}  // namespace zephyr

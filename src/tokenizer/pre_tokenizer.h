// tokenizer.json "pre_tokenizer": splits normalized text into the words BPE sees.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "tokenizer/normalizer.h"

namespace zephyr {

class PreTokenizer {
 public:
  static PreTokenizer from_json(const json& spec, const std::string& where);

  // Splits `text` (one segment between added tokens) into words, appended to `words`.
  // `first_segment` is true when the segment starts the input (Metaspace "first" scheme).
  void split(std::string text, bool first_segment, std::vector<std::string>& words) const;

 private:
  enum class Kind { Split, ByteLevel, Metaspace, Digits };
  enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
  enum class Prepend { Always, First, Never };
  struct Step {
    Kind kind;
    Pattern pattern;                       // Split
    Behavior behavior = Behavior::Isolated;  // Split
    bool invert = false;                   // Split
    bool add_prefix_space = false;         // ByteLevel
    bool use_regex = false;                // ByteLevel (GPT-2 regex)
    std::string replacement;               // Metaspace
    Prepend prepend = Prepend::Always;     // Metaspace
    bool split = true;                     // Metaspace
    bool individual_digits = false;        // Digits
  };
  static void add(const json& spec, const std::string& where, std::vector<Step>& steps);
  static void apply(const Step& s, std::vector<std::string>& pieces, bool first_segment);
  std::vector<Step> steps_;
};

}  // namespace zephyr

// tokenizer.json "decoder": turns token strings back into text.
#pragma once
#include <string>
#include <vector>

#include "io/json_file.h"
#include "tokenizer/normalizer.h"

namespace zephyr {

class Decoder {
 public:
  static Decoder from_json(const json& spec, const std::string& where);
  std::string decode(std::vector<std::string> tokens) const;
  // The raw bytes one token adds in the middle of a text (no start-of-text stripping, byte
  // tokens as their byte even when alone they are not valid UTF-8): what constrained decoding
  // matches against.
  std::string token_bytes(const std::string& token) const;

 private:
  enum class Kind { Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace };
  struct Step {
    Kind kind;
    Pattern pattern;          // Replace
    std::string content;      // Replace: replacement; Strip: the character; Metaspace: replacement
    int start = 0, stop = 0;  // Strip
    bool prepend = true;      // Metaspace: a leading space was added on encode, remove it
  };
  static void add(const json& spec, const std::string& where, std::vector<Step>& steps);
  std::vector<Step> steps_;
};

}  // namespace zephyr

// Which tokenizer a model path means: a model directory's tokenizer files, a tokenizer.json, or
// the tokenizer stored in a GGUF. Every command, the server and the trainers choose it here.
#pragma once
#include <memory>
#include <string>

#include "model/weights.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace zephyr {

// A model directory, tokenizer.json or GGUF file.
Tokenizer load_tokenizer(const std::string& path);
// The tokenizer of a loaded model, or an error that says how to give it one.
Tokenizer model_tokenizer(const Model& model);

// A training model's tokenizer and chat template when it has them (tokenized data needs
// neither); each null when absent.
struct OptionalTokenizer {
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<ChatTemplate> tmpl;
};
OptionalTokenizer load_optional_tokenizer(const std::string& model_path);

}  // namespace zephyr

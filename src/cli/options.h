// Flags several subcommands share (threads, sampling) and loading a model with its tokenizer.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "generate/sampler.h"
#include "model/weights.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace zephyr::cli {

// -t/--threads; call apply() before running.
struct ThreadsFlag {
  int threads = 0;
  void add(CLI::App* cmd);
  void apply() const;
};

// --temp, --top-k, --top-p, --min-p, --repeat-penalty, --seed. Flags not given fall back to the
// model's generation_config.json, then to zephyr's defaults; no --seed picks a random one.
struct SamplingFlags {
  SamplingParams given;
  CLI::Option *temp = nullptr, *top_k = nullptr, *top_p = nullptr, *min_p = nullptr, *penalty = nullptr, *seed = nullptr;
  void add(CLI::App* cmd);
  SamplingParams resolve(const Model& model) const;
};

// The tokenizer of a model directory, or an error that says how to give one.
// The tokenizer of a model directory, tokenizer.json or GGUF file.
Tokenizer load_tokenizer(const std::string& path);
Tokenizer load_model_tokenizer(const Model& model);

// A training model's tokenizer and chat template when its directory has them (tokenized data
// needs neither); each null when absent.
struct OptionalTokenizer {
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<ChatTemplate> tmpl;
};
OptionalTokenizer load_optional_tokenizer(const std::string& model_path);

}  // namespace zephyr::cli

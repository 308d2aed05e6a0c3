// Flags several subcommands share (threads, sampling).
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "generate/sampler.h"
#include "model/weights.h"
#include "model/model_tokenizer.h"

namespace zephyr::cli {

// -t/--threads; call apply() before running.
struct ThreadsFlag {
  int threads = 0;
  void add(CLI::App* cmd);
  void apply() const;
};

// -m/--model and --lora: a model, optionally with a LoRA adapter merged in as it loads. `-m` may
// name the adapter itself when its adapter_config.json names a base that exists here.
struct ModelFlags {
  std::string model, lora;
  void add(CLI::App* cmd, const std::string& help = "model directory (Hugging Face layout) or GGUF file");
  // Prints what it merged to stderr.
  Model load();
  // The base model's path (after load(): also when -m named an adapter).
  const std::string& path() const { return model; }
};

// --temp, --top-k, --top-p, --min-p, --repeat-penalty, --seed. Flags not given fall back to the
// model's generation_config.json, then to zephyr's defaults; no --seed picks a random one.
struct SamplingFlags {
  SamplingParams given;
  CLI::Option *temp = nullptr, *top_k = nullptr, *top_p = nullptr, *min_p = nullptr, *penalty = nullptr, *seed = nullptr;
  void add(CLI::App* cmd);
  SamplingParams resolve(const Model& model) const;
};

}  // namespace zephyr::cli

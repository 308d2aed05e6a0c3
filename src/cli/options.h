// Flags several subcommands share (threads, sampling).
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "generate/sampler.h"
#include "model/weights.h"
#include "model/model_tokenizer.h"
#include "model/served_adapter.h"

namespace zephyr::cli {

// -t/--threads; call apply() before running.
struct ThreadsFlag {
  int threads = 0;
  void add(CLI::App* cmd);
  void apply() const;
};

// -m/--model and --lora: a model, optionally with a LoRA adapter (Model::adapter). `-m` may name
// the adapter itself when its adapter_config.json names a base that exists here. With `several`
// (the server), --lora repeats: `--lora NAME=DIR` (or several --lora) keeps each adapter beside
// the base, served under its name; one --lora DIR alone is the model's own, as elsewhere.
struct ModelFlags {
  std::string model, lora;  // lora: the model's own adapter
  std::vector<std::string> beside;  // NAME=DIR or DIR, as given
  void add(CLI::App* cmd, const std::string& help = "model directory (Hugging Face layout) or GGUF file", bool several = false);
  // Prints the adapter it put on the model to stderr.
  Model load();
  // The adapters kept beside the base (after load()), checked against it; prints what it loaded.
  std::vector<std::shared_ptr<const ServedAdapter>> served_adapters(const Model& base) const;
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

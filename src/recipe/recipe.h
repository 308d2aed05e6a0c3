// The Zephyr recipe end to end, from a directory of YAML files (recipes/smol/): the base model,
// teacher data, Zephyr-beta's filter, dSFT, AI feedback from four generators judged and
// binarized, dDPO from dSFT and from the base (the report's ablation), MT-Bench- and
// AlpacaEval-style evaluation of all four models, and the report. Each stage's output is a
// model directory or JSONL usable on its own; a stage whose output is complete is skipped, so a
// rerun after a kill continues where it stopped.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/teacher.h"

namespace zephyr {

struct GeneratorEntry {
  std::string model;  // base | dsft | dsft_early | dsft_ddpo | ddpo_only, or a model SPEC
  double temperature = 0.7, top_p = 1.0;
  int completions = 1;
};

// recipe.yaml, with the --quick block applied when asked for.
struct Recipe {
  std::string dir;           // the recipe directory (sft/dpo/filter files are relative to it)
  std::string base;          // GGUF (exported to HF first) or HF model directory
  // A tiny random model standing in for a base that is missing (the quick block's, for machines
  // without the model package); tokenizer "" = none configured.
  struct FallbackBase {
    std::string tokenizer;
    int64_t hidden = 64, layers = 2, heads = 4, kv_heads = 2, intermediate = 128;
  } fallback_base;
  std::string data_dir;      // "" = the teacher writes the data (synth)
  SynthConfig synth;
  std::string filter_rules;  // YAML of data filter rules ("" = the built-in ones)
  std::string sft_config, dpo_config;  // TrainConfig YAML files
  std::vector<std::pair<std::string, std::string>> sft_overrides, dpo_overrides;
  std::vector<GeneratorEntry> generators;
  int64_t feedback_max_tokens = 64;
  std::string judge = "rules";  // "rules" (zephyr-rule-judge beside zephyr) or a model SPEC
  std::string binarize_strategy = "random";
  int64_t eval_max_tokens = 64;
  double eval_temperature = 0.0;
  int concurrency = 8;
  uint64_t seed = 42;
  std::string showcase_system, showcase_prompt;  // the model card's example, answered last

  // Reads DIR/recipe.yaml; an unknown key or a wrong type is an Error naming the file and key.
  static Recipe load(const std::string& dir, bool quick);
};

struct RecipeOptions {
  std::string dir, out;
  bool quick = false;
  std::string base, data, judge;  // override the recipe's base model, data directory and judge
};

// Runs every stage not yet complete in options.out; returns the report's Markdown.
std::string run_recipe(const RecipeOptions& options);

}  // namespace zephyr

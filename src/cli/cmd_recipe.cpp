// zephyr recipe run DIR: the whole Zephyr recipe from a directory of YAML files (see recipe/recipe.h).
#include <cstdio>

#include "cli/commands.h"
#include "recipe/recipe.h"

namespace zephyr::cli {

Run add_recipe(CLI::App& app) {
  auto* cmd = app.add_subcommand("recipe", "The Zephyr recipe end to end: base -> data filter -> dSFT -> AI feedback -> dDPO (and dDPO "
                                           "without dSFT) -> evaluation -> report");
  cmd->require_subcommand(1);
  auto o = std::make_shared<RecipeOptions>();
  auto* run = cmd->add_subcommand("run", "Run every stage not yet complete in --out (a rerun after a kill continues); prints the report");
  run->add_option("dir", o->dir, "the recipe directory (recipe.yaml, sft.yaml, dpo.yaml, ...), e.g. recipes/smol")->required();
  run->add_option("--out", o->out, "output directory (default runs/NAME, NAME the recipe's directory name)");
  run->add_flag("--quick", o->quick, "the recipe's quick block: fewer prompts and steps (CI)");
  run->add_option("--base", o->base, "the base model instead of the recipe's (GGUF or HF directory)");
  run->add_option("--judge", o->judge, "the judge instead of the recipe's: rules, or a model SPEC (path, http(s)://HOST:PORT/v1[#NAME], exec:PATH)");
  run->add_option("--data", o->data, "a data directory instead of the teacher (sft.jsonl, feedback_prompts.jsonl, mt_bench.jsonl, alpaca_eval.jsonl)");
  return [o] {
    if (o->out.empty()) {
      std::string name = o->dir;
      while (!name.empty() && name.back() == '/') name.pop_back();
      name = name.substr(name.find_last_of('/') + 1);
      o->out = "runs/" + name + (o->quick ? "-quick" : "");
    }
    const std::string report = run_recipe(*o);
    std::fwrite(report.data(), 1, report.size(), stdout);
    std::fprintf(stderr, "recipe done: %s/report.md\n", o->out.c_str());
    return 0;
  };
}

}  // namespace zephyr::cli

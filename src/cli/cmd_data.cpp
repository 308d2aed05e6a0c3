// zephyr data synth | filter: the recipe's teacher data and Zephyr-beta's dSFT filtering
// (see data/teacher.h and data/chat_filter.h).
#include <cstdio>

#include "cli/commands.h"
#include "data/chat_filter.h"
#include "data/teacher.h"

namespace zephyr::cli {

namespace {

struct DataArgs {
  SynthConfig synth;
  FilterConfig filter;
  std::string rules;
};

void print_filter_summary(const FilterSummary& s, const std::string& out) {
  std::fprintf(stderr, "data filter: kept %lld of %lld dialogues -> %s\n", (long long)s.kept, (long long)s.rows, out.c_str());
  for (const auto& [rule, n] : s.by_rule) std::fprintf(stderr, "  %-16s %lld\n", rule.c_str(), (long long)n);
  if (s.labelled > 0)
    std::fprintf(stderr, "  labelled flaws caught: %lld of %lld (recall %.1f%%); unlabelled rows dropped: %lld\n", (long long)s.labelled_caught,
                 (long long)s.labelled, 100.0 * double(s.labelled_caught) / double(s.labelled), (long long)s.clean_dropped);
}

}  // namespace

Run add_data(CLI::App& app) {
  auto* cmd = app.add_subcommand("data", "Recipe data: a seeded teacher for a checkable domain, and dSFT data filtering as Zephyr-beta's");
  cmd->require_subcommand(1);
  auto a = std::make_shared<DataArgs>();
  auto* synth = cmd->add_subcommand("synth", "Write teacher data: sft.jsonl (dialogues with ideal answers, some with known flaws), "
                                             "feedback_prompts.jsonl, and held-out mt_bench.jsonl and alpaca_eval.jsonl");
  synth->add_option("--out", a->synth.out_dir, "output directory")->required();
  synth->add_option("--seed", a->synth.seed, "seed; the same seed writes the same files (default 1)");
  synth->add_option("--sft", a->synth.sft_dialogues, "dSFT dialogues (default 240)")->check(CLI::PositiveNumber);
  synth->add_option("--feedback", a->synth.feedback_prompts, "prompts for feedback collection (default 96)")->check(CLI::PositiveNumber);
  synth->add_option("--eval-questions", a->synth.eval_questions, "two-turn MT-Bench-shaped questions (default 40)")->check(CLI::PositiveNumber);
  synth->add_option("--eval-instructions", a->synth.eval_instructions, "AlpacaEval-shaped instructions (default 32)")->check(CLI::PositiveNumber);
  synth->add_option("--flaw-rate", a->synth.flaw_rate, "share of dialogues given a known flaw for the filter (default 0.1)");
  auto* filter = cmd->add_subcommand("filter", "Drop dialogues with mis-cased or boilerplate answers and duplicate prompts; counts per rule");
  filter->add_option("--in", a->filter.in, "{\"messages\"} JSONL")->required();
  filter->add_option("--out", a->filter.out, "the kept rows")->required();
  filter->add_option("--rules", a->rules, "YAML: lowercase_start, min_caps_run, openers (the boilerplate phrases), duplicates");
  filter->add_option("--rejected", a->filter.rejected, "also write the dropped rows, each with the \"rules\" it broke");
  filter->add_flag("--report-only", a->filter.report_only, "keep every row; only count");
  return [a, synth, filter] {
    if (synth->parsed()) {
      const SynthSummary s = synth_data(a->synth);
      std::string flaws;
      for (const auto& [k, n] : s.flaws) flaws += (flaws.empty() ? "" : ", ") + k + " " + std::to_string(n);
      std::fprintf(stderr, "data synth: %lld dSFT dialogues (flaws: %s), %lld feedback prompts, %lld + %lld held-out evaluation prompts in %s\n",
                   (long long)s.sft, flaws.empty() ? "none" : flaws.c_str(), (long long)s.feedback, (long long)s.eval_questions,
                   (long long)s.eval_instructions, a->synth.out_dir.c_str());
      return 0;
    }
    if (!a->rules.empty()) a->filter.rules = FilterRules::load(a->rules);
    print_filter_summary(filter_chats(a->filter), a->filter.out);
    return 0;
  };
}

}  // namespace zephyr::cli

// zephyr eval mt-bench | winrate | chart: the report's measurements (see eval/evaluation.h).
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "eval/evaluation.h"

namespace zephyr::cli {

namespace {

struct EvalArgs {
  std::string questions, reference, instructions, baseline, model, judge, out, template_file, api_key_env;
  std::vector<std::string> dirs;
  double temperature = -1;
  int64_t max_tokens = 1024, judge_max_tokens = 768;
  int retries = 2, concurrency = 4;
  uint64_t seed = 0;
  ClientOptions client;
};

JudgeSettings judge_settings(const EvalArgs& a) {
  JudgeSettings j;
  j.judge = parse_model_spec(a.judge, a.api_key_env);
  if (!a.template_file.empty()) j.template_text = read_file(a.template_file);
  j.max_tokens = a.judge_max_tokens;
  j.retries = a.retries;
  return j;
}

}  // namespace

Run add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Evaluate a model as the Zephyr report does: MT-Bench-style grading, AlpacaEval-style win rates");
  cmd->require_subcommand(1);
  auto a = std::make_shared<EvalArgs>();
  auto* mt = cmd->add_subcommand("mt-bench", "Two-turn answers graded 1-10 by a judge; per-category means and a radar chart");
  mt->add_option("--questions", a->questions, "MT-Bench question.jsonl rows {question_id, category, turns: [two], reference?}")->required();
  mt->add_option("--reference", a->reference, "reference answers (FastChat's {question_id, choices: [{turns}]}), shown for math/reasoning/coding");
  mt->add_option("--single-template", a->template_file, "Jinja file with the grader's instructions (default prompts/eval_single.jinja)");
  auto* wr = cmd->add_subcommand("winrate", "Win rate against a baseline, each pair judged in both orders; length-controlled rate beside it");
  wr->add_option("--instructions", a->instructions, "AlpacaEval-style {\"instruction\"} rows")->required();
  wr->add_option("--baseline", a->baseline, "a model SPEC, or a JSONL of {instruction, output, generator}")->required();
  wr->add_option("--pairwise-template", a->template_file, "Jinja file with the judge's instructions (default prompts/eval_pairwise.jinja)");
  for (auto* sub : {mt, wr}) {
    sub->add_option("--model", a->model, "the model to evaluate: a path, http(s)://HOST:PORT/v1[#NAME] or exec:PATH")->required();
    sub->add_option("--judge", a->judge, "the judge: a path, http(s)://HOST:PORT/v1[#NAME] or exec:PATH")->required();
    sub->add_option("--out", a->out, "output directory (answers and judgments there are reused)")->required();
    sub->add_option("--temperature", a->temperature,
                    sub == mt ? "one temperature for every category (default: MT-Bench's per category)" : "sampling temperature (default 0.7)");
    sub->add_option("--max-tokens", a->max_tokens, "most tokens per answer (default 1024)")->check(CLI::PositiveNumber);
    sub->add_option("--judge-max-tokens", a->judge_max_tokens, "most tokens per judgment (default 768)")->check(CLI::PositiveNumber);
    sub->add_option("--retries", a->retries, "re-asks after an unparsable verdict before it is recorded as failed (default 2)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--concurrency", a->concurrency, "calls in flight (default 4)")->check(CLI::PositiveNumber);
    sub->add_option("--seed", a->seed, "base seed of the answers (default 0)");
    sub->add_option("--api-key-env", a->api_key_env, "the environment variable holding the endpoints' API key");
    sub->add_option("--max-retries", a->client.max_retries, "retries of a call after a 429, 5xx, timeout or garbage (default 4)");
    sub->add_option("--timeout", a->client.timeout_s, "seconds a call may take (default 600)")->check(CLI::PositiveNumber);
  }
  auto* chart = cmd->add_subcommand("chart", "Several mt-bench runs in one radar chart (SVG) and one table");
  chart->add_option("dirs", a->dirs, "mt-bench output directories")->required();
  chart->add_option("--out", a->out, "the SVG to write")->required();
  return [a, mt, wr, chart] {
    if (chart->parsed()) {
      std::fputs(eval_chart(a->dirs, a->out).c_str(), stdout);
      std::fprintf(stderr, "wrote %s\n", a->out.c_str());
      return 0;
    }
    // What both take the same way: the model, the judge, the output and the run settings.
    const auto common = [&](auto& c) {
      c.out_dir = a->out;
      c.model = parse_model_spec(a->model, a->api_key_env);
      c.judge = judge_settings(*a);
      c.max_tokens = a->max_tokens;
      c.concurrency = a->concurrency;
      c.seed = a->seed;
      c.client = a->client;
    };
    if (mt->parsed()) {
      MtBenchConfig c;
      common(c);
      c.questions = a->questions;
      c.reference = a->reference;
      c.temperature = a->temperature;
      eval_mt_bench(c);
      std::fputs(read_file(a->out + "/summary.md").c_str(), stdout);
      std::fprintf(stderr, "wrote %s/{answers,judgments}.jsonl, summary.{json,md}, radar.svg\n", a->out.c_str());
      return 0;
    }
    WinrateConfig c;
    common(c);
    c.instructions = a->instructions;
    c.baseline = a->baseline;
    c.temperature = a->temperature >= 0 ? a->temperature : 0.7;
    eval_winrate(c);
    std::fputs(read_file(a->out + "/summary.md").c_str(), stdout);
    return 0;
  };
}

}  // namespace zephyr::cli

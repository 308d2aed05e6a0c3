// zephyr feedback generate | judge | binarize: the AI-feedback stage (see feedback/feedback.h).

#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "feedback/feedback.h"
#include "io/yaml_file.h"

namespace zephyr::cli {

namespace {

struct FeedbackArgs {
  // generate
  std::string prompts, out, config, api_key_env;
  std::vector<std::string> models;
  int completions = 1;
  double temperature = 0.7, top_p = 0.95;
  int64_t max_tokens = 512;
  uint64_t seed = 0;
  int concurrency = 8;
  ClientOptions client;
  // judge
  std::string in, judge, template_file;
  int retries = 2;
  int64_t judge_max_tokens = 1536;
  // binarize
  uint64_t binarize_seed = 42;
  std::string strategy = "random";
};

template <class T>
T yaml_value(const YAML::Node& n, const char* key, T fallback, const std::string& where) {
  if (!n[key]) return fallback;
  try {
    return n[key].as<T>();
  } catch (const YAML::Exception&) {
    fail(where + ": " + key, "has the wrong type");
  }
}

// Generators from --model flags, or from a config's "generators" list (each entry's keys
// override the flags' values).
std::vector<GeneratorConfig> generators(const FeedbackArgs& a, GenerateConfig& c) {
  GeneratorConfig base;
  base.completions = a.completions;
  base.sampling.temperature = a.temperature;
  base.sampling.top_p = a.top_p;
  base.sampling.top_k = 0;
  base.max_tokens = a.max_tokens;
  std::vector<GeneratorConfig> out;
  for (const std::string& m : a.models) {
    GeneratorConfig g = base;
    g.spec = parse_model_spec(m, a.api_key_env);
    out.push_back(g);
  }
  if (a.config.empty()) return out;
  const YAML::Node root = load_yaml_file(a.config);
  reading_yaml(a.config, [&] {
    if (root["prompts"] && c.prompts.empty()) c.prompts = root["prompts"].as<std::string>();
    if (root["out"] && c.out.empty()) c.out = root["out"].as<std::string>();
    const YAML::Node list = root["generators"];
    if (!list || !list.IsSequence()) fail(a.config, "expected a \"generators\" list ({model: SPEC, completions, temperature, ...})");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = a.config + ": generators[" + std::to_string(i) + "]";
      const YAML::Node n = list[i];
      if (!n["model"]) fail(where, "needs \"model\" (a path, http(s)://HOST:PORT/v1[#NAME] or exec:PATH)");
      GeneratorConfig g = base;
      g.spec = parse_model_spec(n["model"].as<std::string>(), yaml_value<std::string>(n, "api_key_env", a.api_key_env, where));
      g.name = yaml_value<std::string>(n, "name", "", where);
      g.completions = yaml_value<int>(n, "completions", g.completions, where);
      g.sampling.temperature = yaml_value<double>(n, "temperature", g.sampling.temperature, where);
      g.sampling.top_p = yaml_value<double>(n, "top_p", g.sampling.top_p, where);
      g.max_tokens = yaml_value<int64_t>(n, "max_tokens", g.max_tokens, where);
      if (g.completions < 1) fail(where + ": completions", "must be at least 1");
      out.push_back(g);
    }
  });
  return out;
}

void print_summary(const char* what, const FeedbackSummary& s) {
  std::fprintf(stderr, "feedback %s: %lld done (%lld from an earlier run), %lld failed, %lld retries, %lld tokens in %.1f s\n", what,
               (long long)s.done, (long long)s.skipped, (long long)s.failed, (long long)s.retries, (long long)s.tokens, s.seconds);
}

}  // namespace

Run add_feedback(CLI::App& app) {
  auto* cmd = app.add_subcommand("feedback", "AI feedback as UltraFeedback: completions from several models, a judge's ratings, "
                                             "chosen/rejected pairs for dpo");
  cmd->require_subcommand(1);
  auto a = std::make_shared<FeedbackArgs>();
  auto* gen = cmd->add_subcommand("generate", "Completions of every prompt from every model (resumable JSONL)");
  gen->add_option("--prompts", a->prompts, "JSONL of {\"prompt\": ...} or {\"messages\": [...]} rows (an optional \"prompt_id\" is kept)");
  gen->add_option("--model", a->models, "a generator: a model path, http(s)://HOST:PORT/v1[#NAME] or exec:PATH (repeatable)");
  gen->add_option("--out", a->out, "output JSONL (rows already there are kept and skipped)");
  gen->add_option("--config", a->config, "YAML: prompts, out, and generators [{model, name, completions, temperature, top_p, max_tokens, api_key_env}]");
  gen->add_option("--completions-per-model", a->completions, "samples per prompt and model (default 1)")->check(CLI::PositiveNumber);
  gen->add_option("--temperature", a->temperature, "sampling temperature (default 0.7)")->check(CLI::Range(0.0, 2.0));
  gen->add_option("--top-p", a->top_p, "nucleus sampling (default 0.95)")->check(CLI::Range(0.0, 1.0));
  gen->add_option("--max-tokens", a->max_tokens, "most tokens per completion (default 512)")->check(CLI::PositiveNumber);
  gen->add_option("--seed", a->seed, "base seed: each completion's seed comes from it, its prompt, model and sample (default 0)");
  gen->add_option("--concurrency", a->concurrency, "calls in flight; local models decode this many together (default 8)")
      ->check(CLI::PositiveNumber);
  auto* judge = cmd->add_subcommand("judge", "Rate every prompt's completions with a judge on UltraFeedback's rubric (resumable JSONL)");
  judge->add_option("--in", a->in, "the output of feedback generate")->required();
  judge->add_option("--judge", a->judge, "the judge: a model path, http(s)://HOST:PORT/v1[#NAME] or exec:PATH")->required();
  judge->add_option("--out", a->out, "output JSONL (prompts already there are kept and skipped)")->required();
  judge->add_option("--template", a->template_file, "Jinja file with the judge's instructions (default prompts/feedback_judge.jinja)");
  judge->add_option("--retries", a->retries, "re-asks after an unparsable judgment before it is recorded as failed (default 2)")
      ->check(CLI::NonNegativeNumber);
  judge->add_option("--max-tokens", a->judge_max_tokens, "most tokens per judgment (default 1536)")->check(CLI::PositiveNumber);
  judge->add_option("--concurrency", a->concurrency, "judgments in flight (default 8)")->check(CLI::PositiveNumber);
  judge->add_option("--seed", a->seed, "seed of the judge's retries (default 0)");
  for (auto* sub : {gen, judge}) {
    sub->add_option("--api-key-env", a->api_key_env, "the environment variable holding the endpoints' API key (the key never goes on the command line)");
    sub->add_option("--max-retries", a->client.max_retries, "retries of a call after a 429, 5xx, timeout or garbage (default 4)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--retry-base-ms", a->client.retry_base_ms, "first backoff; doubles per retry (default 500)")->check(CLI::NonNegativeNumber);
    sub->add_option("--timeout", a->client.timeout_s, "seconds a call may take (default 600)")->check(CLI::PositiveNumber);
  }
  auto* bin = cmd->add_subcommand("binarize", "Chosen/rejected pairs from the judged completions, in dpo's dataset format");
  bin->add_option("--in", a->in, "the output of feedback judge")->required();
  bin->add_option("--out", a->out, "pairs JSONL (prompt, chosen, rejected, score_chosen, score_rejected)")->required();
  bin->add_option("--seed", a->binarize_seed, "seed of the rejected pick (default 42)");
  bin->add_option("--strategy", a->strategy, "rejected: random (among the strictly lower, as ultrafeedback_binarized) or worst")
      ->check(CLI::IsMember({"random", "worst"}));
  return [a, gen, judge, bin] {
    if (gen->parsed()) {
      GenerateConfig c;
      c.prompts = a->prompts;
      c.out = a->out;
      c.generators = generators(*a, c);
      if (c.prompts.empty()) fail("--prompts", "is required (or \"prompts\" in --config)");
      if (c.out.empty()) fail("--out", "is required (or \"out\" in --config)");
      if (c.generators.empty()) fail("--model", "give at least one (or \"generators\" in --config)");
      c.seed = a->seed;
      c.concurrency = a->concurrency;
      c.client = a->client;
      print_summary("generate", feedback_generate(c));
      return 0;
    }
    if (judge->parsed()) {
      JudgeConfig c;
      c.in = a->in;
      c.out = a->out;
      c.judge = parse_model_spec(a->judge, a->api_key_env);
      if (!a->template_file.empty()) c.template_text = read_file(a->template_file);
      c.retries = a->retries;
      c.max_tokens = a->judge_max_tokens;
      c.concurrency = a->concurrency;
      c.seed = a->seed;
      c.client = a->client;
      print_summary("judge", feedback_judge(c));
      return 0;
    }
    BinarizeConfig c;
    c.in = a->in;
    c.out = a->out;
    c.seed = a->binarize_seed;
    c.strategy = a->strategy;
    const FeedbackSummary s = feedback_binarize(c);
    std::fprintf(stderr, "feedback binarize: %lld pairs; dropped %lld prompts whose scores all tie and %lld with fewer than two scored\n",
                 (long long)s.pairs, (long long)s.ties, (long long)s.too_few);
    return 0;
  };
}

}  // namespace zephyr::cli

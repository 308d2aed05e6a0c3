// AI feedback (Zephyr's AIF stage, as UltraFeedback): completions of each prompt from several
// models, a judge's rubric ratings of them, and chosen/rejected pairs for dDPO.
// generate and judge append one JSONL row per unit of work, flushed as it is done, keyed by
// (prompt_id, model, sample) / prompt_id: a rerun after an interruption skips what is there
// (a torn last line is cut off) and so loses and duplicates nothing.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "feedback/model_client.h"

namespace zephyr {

struct GeneratorConfig {
  ModelSpec spec;
  std::string name;  // what rows record as "model" ("" = the spec's label); distinct per generator
  std::string label() const { return name.empty() ? spec.label() : name; }
  int completions = 1;  // samples per prompt
  SamplingParams sampling;
  int64_t max_tokens = 512;
};

struct GenerateConfig {
  std::string prompts, out;
  std::vector<GeneratorConfig> generators;
  int concurrency = 8;  // calls in flight (local models decode that many together)
  uint64_t seed = 0;    // each completion's seed derives from it, the prompt, the model and the sample
  ClientOptions client;
};

struct JudgeConfig {
  std::string in, out;
  ModelSpec judge;
  std::string template_text;  // Jinja; "" = prompts/feedback_judge.jinja
  int64_t max_tokens = 1536;
  int retries = 2;  // re-asks after an unparsable judgment, before it is recorded as failed
  int concurrency = 4;
  uint64_t seed = 0;
  ClientOptions client;
};

struct BinarizeConfig {
  std::string in, out;
  uint64_t seed = 42;
  std::string strategy = "random";  // rejected: random among the strictly lower, or "worst"
};

struct FeedbackSummary {
  int64_t done = 0, skipped = 0, failed = 0, retries = 0, tokens = 0;
  int64_t pairs = 0, ties = 0, too_few = 0;  // binarize
  double seconds = 0;
};

// A prompt row: {"prompt": "..."} or {"messages": [...]} (trailing assistant turns dropped), with
// "prompt_id" kept or made from a hash of the messages.
struct PromptRow {
  std::string id;
  ordered_json messages;
};
std::vector<PromptRow> read_prompts(const std::string& path);

FeedbackSummary feedback_generate(const GenerateConfig& config);
FeedbackSummary feedback_judge(const JudgeConfig& config);
FeedbackSummary feedback_binarize(const BinarizeConfig& config);

}  // namespace zephyr

// Evaluation as the Zephyr report measures it: MT-Bench-style graded two-turn chat (a judge rates
// each answer 1-10; per-category and overall means; the radar chart), and AlpacaEval-style win
// rates against a baseline (pairwise judgments in both orders, standard error, and a
// length-controlled rate). Models and judges are model SPECs (feedback/model_client.h); answers
// and judgments are resumable JSONL in the output directory, so a rerun reuses them.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "feedback/model_client.h"

namespace zephyr {

struct JudgeSettings {
  ModelSpec judge;
  std::string template_text;  // "" = the built-in prompts/eval_*.jinja
  int64_t max_tokens = 768;
  int retries = 2;  // re-asks after an unparsable verdict, then it is recorded as failed
};

struct MtBenchConfig {
  std::string questions, reference, out_dir;
  ModelSpec model;
  JudgeSettings judge;
  double temperature = -1;  // >= 0: for every category (else MT-Bench's per-category values)
  int64_t max_tokens = 1024;
  int concurrency = 4;
  uint64_t seed = 0;
  ClientOptions client;
};

struct TurnMeans {
  double turn1 = 0, turn2 = 0, both = 0;
  int64_t n1 = 0, n2 = 0;
};
struct MtBenchResult {
  std::string model;
  std::vector<std::string> categories;  // in the questions' order
  std::map<std::string, TurnMeans> by_category;
  TurnMeans overall;
  int64_t failures = 0;  // judgments recorded without a rating
};

// Writes answers.jsonl, judgments.jsonl, summary.json, summary.md and radar.svg in out_dir.
MtBenchResult eval_mt_bench(const MtBenchConfig& config);
// The means over judgment rows ({"category", "turn", "rating"}; rows without a rating skipped).
MtBenchResult mt_bench_means(const std::vector<ordered_json>& judgments, const std::vector<std::string>& categories);

// Several runs' summary.json in one radar chart (SVG) and one Markdown table (returned).
std::string eval_chart(const std::vector<std::string>& dirs, const std::string& out_svg);
// Text for SVG/XML attributes and elements.
std::string xml_escape(const std::string& s);
// A radar chart: one axis per category (0-10), one polygon per model.
std::string radar_svg(const std::vector<std::string>& categories, const std::vector<std::pair<std::string, std::vector<double>>>& models);

struct WinrateConfig {
  std::string instructions, out_dir;
  ModelSpec model;
  std::string baseline;  // a SPEC, or a JSONL of {"instruction", "output", "generator"}
  JudgeSettings judge;
  double temperature = 0.7;
  int64_t max_tokens = 1024;
  int concurrency = 4;
  uint64_t seed = 0;
  ClientOptions client;
};

struct WinrateResult {
  double win_rate = 0, standard_error = 0, length_controlled = 0;  // percent
  double model_length = 0, baseline_length = 0;  // mean characters
  int64_t instructions = 0, failures = 0;
  int64_t wins = 0, losses = 0, ties = 0;  // judgments, both orders
};

// Writes outputs.jsonl (and baseline.jsonl for a baseline model), judgments.jsonl, summary.json
// and summary.md in out_dir.
WinrateResult eval_winrate(const WinrateConfig& config);

// The win rate at zero length difference: a logistic regression of the preference (1 win, 0.5
// tie, 0 loss) on the standardized length difference (model minus baseline), as AlpacaEval's
// length-controlled rate; in percent.
double length_controlled_win_rate(const std::vector<double>& preference, const std::vector<double>& length_difference);

}  // namespace zephyr

// The recipe's report: the ablation table (base, dSFT, dDPO only, dSFT+dDPO), the radar chart,
// the training curves and sample answers, as Markdown plus two SVG files.
#pragma once
#include <string>
#include <vector>

namespace zephyr {

struct ReportModel {
  std::string label;        // the table's row label
  std::string mt_bench_dir;  // eval mt-bench output
  std::string winrate_dir;   // eval winrate output (against dSFT)
};

struct ReportInputs {
  std::string out_dir;              // report.md, radar.svg, training.svg go here
  std::string questions;            // the mt-bench questions (for accuracy and persona by check_answer)
  std::vector<ReportModel> models;  // the last one is the final model
  std::string sft_metrics;          // metrics.jsonl of dSFT
  std::vector<std::pair<std::string, std::string>> dpo_metrics;  // label, metrics.jsonl
  std::vector<std::string> notes;   // lines on the data and feedback stages
  std::string showcase_system, showcase_prompt, showcase_answer;
};

// Writes the files and returns the Markdown.
std::string write_report(const ReportInputs& in);

// A chart of lines per panel (title, series of (label, points)), as SVG; used for training curves.
struct CurvePanel {
  std::string title;
  std::vector<std::pair<std::string, std::vector<std::pair<double, double>>>> series;
};
std::string curves_svg(const std::vector<CurvePanel>& panels);

}  // namespace zephyr

#include "recipe/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/error.h"
#include "data/teacher.h"
#include "eval/evaluation.h"
#include "eval/judge_call.h"
#include "io/json_file.h"

namespace zephyr {

namespace {

std::vector<ordered_json> read_rows(const std::string& path) {
  std::vector<ordered_json> rows;
  std::ifstream in(path);
  if (!in) fail(path, "cannot open (did its stage finish?)");
  for_each_jsonl(in, path, [&](const ordered_json& r, size_t) { rows.push_back(r); });
  return rows;
}

ordered_json read_json(const std::string& path) { return parse_ordered_json(read_file(path), path); }

// Text inside a Markdown block quote: its line breaks stay inside the quote.
std::string quoted(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '\n' ? std::string("  \n> ") : std::string(1, c);
  return out;
}

std::string fmt(double v, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

size_t word_count(const std::string& s) {
  size_t n = 0;
  bool in = false;
  for (unsigned char c : s) {
    const bool space = std::isspace(c);
    if (!space && !in) ++n;
    in = !space;
  }
  return n;
}

struct AnswerStats {
  int64_t turns = 0, known = 0, correct = 0, persona_turns = 0, persona_ok = 0;
  double words = 0;
};

// Accuracy and persona by the teacher's checker over a model's mt-bench answers.
AnswerStats answer_stats(const std::map<std::string, ordered_json>& questions, const std::string& answers_path) {
  AnswerStats s;
  for (const ordered_json& a : read_rows(answers_path)) {
    const auto q = questions.find(a.value("question_id", ""));
    if (q == questions.end() || !a.contains("turns") || !a["turns"].is_array()) continue;
    ordered_json messages = ordered_json::array();
    const std::string system = q->second.value("system", "");
    if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
    for (size_t t = 0; t < a["turns"].size() && t < q->second["turns"].size(); ++t) {
      const std::string answer = a["turns"][t].is_string() ? a["turns"][t].get<std::string>() : "";
      messages.push_back({{"role", "user"}, {"content", q->second["turns"][t]}});
      const AnswerCheck c = check_answer(messages, answer);
      messages.push_back({{"role", "assistant"}, {"content", answer}});
      ++s.turns;
      s.words += double(word_count(answer));
      if (!c.known) continue;
      ++s.known, s.correct += c.correct;
      if (persona_of(system) != Persona::Plain) ++s.persona_turns, s.persona_ok += c.persona;
    }
  }
  return s;
}

std::vector<std::pair<double, double>> metric_points(const std::string& path, const char* key) {
  std::vector<std::pair<double, double>> pts;
  if (!std::filesystem::exists(path)) return pts;
  for (const ordered_json& r : read_rows(path))
    if (r.contains(key) && r[key].is_number() && r.contains("step") && !r.contains("eval_loss"))
      pts.emplace_back(r["step"].get<double>(), r[key].get<double>());
  return pts;
}

}  // namespace

std::string curves_svg(const std::vector<CurvePanel>& panels) {
  const double pw = 420, ph = 240, ml = 50, mr = 14, mt = 30, mb = 34;
  const int cols = 2, rows = int((panels.size() + 1) / 2);
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt(pw * cols, 0) + "\" height=\"" + fmt(ph * rows, 0) +
                    "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (size_t p = 0; p < panels.size(); ++p) {
    const double ox = pw * double(p % cols), oy = ph * double(p / cols);
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (const auto& [_, pts] : panels[p].series)
      for (auto [x, y] : pts) x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    svg += "<text x=\"" + fmt(ox + pw / 2, 1) + "\" y=\"" + fmt(oy + 18, 1) + "\" text-anchor=\"middle\" font-size=\"13\">" +
           xml_escape(panels[p].title) + "</text>\n";
    const double L = ox + ml, R = ox + pw - mr, T = oy + mt, B = oy + ph - mb;
    svg += "<rect x=\"" + fmt(L, 1) + "\" y=\"" + fmt(T, 1) + "\" width=\"" + fmt(R - L, 1) + "\" height=\"" + fmt(B - T, 1) +
           "\" fill=\"none\" stroke=\"#999\"/>\n";
    if (!(x0 <= x1)) {
      svg += "<text x=\"" + fmt((L + R) / 2, 1) + "\" y=\"" + fmt((T + B) / 2, 1) + "\" text-anchor=\"middle\">no data</text>\n";
      continue;
    }
    if (x1 == x0) x1 = x0 + 1;
    if (y1 == y0) y1 = y0 + 1, y0 -= 1;
    const double pad = (y1 - y0) * 0.05;
    y0 -= pad, y1 += pad;
    auto X = [&](double x) { return L + (x - x0) / (x1 - x0) * (R - L); };
    auto Y = [&](double y) { return B - (y - y0) / (y1 - y0) * (B - T); };
    for (int t = 0; t <= 4; ++t) {  // y ticks
      const double v = y0 + (y1 - y0) * t / 4;
      svg += "<text x=\"" + fmt(L - 4, 1) + "\" y=\"" + fmt(Y(v) + 4, 1) + "\" text-anchor=\"end\">" + fmt(v, std::fabs(y1 - y0) < 2 ? 2 : 1) + "</text>\n";
    }
    svg += "<text x=\"" + fmt(L, 1) + "\" y=\"" + fmt(B + 14, 1) + "\">" + fmt(x0, 0) + "</text><text x=\"" + fmt(R, 1) + "\" y=\"" +
           fmt(B + 14, 1) + "\" text-anchor=\"end\">" + fmt(x1, 0) + "</text><text x=\"" + fmt((L + R) / 2, 1) + "\" y=\"" +
           fmt(B + 26, 1) + "\" text-anchor=\"middle\">step</text>\n";
    for (size_t s = 0; s < panels[p].series.size(); ++s) {
      const auto& [label, pts] = panels[p].series[s];
      std::string d;
      for (auto [x, y] : pts) d += (d.empty() ? "M" : " L") + fmt(X(x), 1) + " " + fmt(Y(y), 1);
      svg += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + colors[s % 4] + "\" stroke-width=\"1.5\"/>\n";
      svg += "<text x=\"" + fmt(R - 4, 1) + "\" y=\"" + fmt(T + 14 + 13 * double(s), 1) + "\" text-anchor=\"end\" fill=\"" + colors[s % 4] + "\">" +
             xml_escape(label) + "</text>\n";
    }
  }
  return svg + "</svg>\n";
}

std::string write_report(const ReportInputs& in) {
  std::map<std::string, ordered_json> questions;
  std::vector<std::string> question_order;
  for (const ordered_json& q : read_rows(in.questions))
    if (q.contains("question_id")) {
      const std::string id = q["question_id"].is_string() ? q["question_id"].get<std::string>() : q["question_id"].dump();
      if (questions.emplace(id, q).second) question_order.push_back(id);
    }

  std::string md = "# Zephyr recipe report\n\n";
  md += "| model | judge score (1-10) | accuracy | persona rate | win rate vs dSFT | mean answer length (words) |\n";
  md += "|---|---|---|---|---|---|\n";
  std::vector<std::string> categories;
  std::vector<std::pair<std::string, std::vector<double>>> radar;
  for (const ReportModel& m : in.models) {
    const ordered_json mt = read_json(m.mt_bench_dir + "/summary.json"), wr = read_json(m.winrate_dir + "/summary.json");
    const AnswerStats s = answer_stats(questions, m.mt_bench_dir + "/answers.jsonl");
    md += "| " + m.label + " | " + two_decimals(mt["overall"]["both"].get<double>()) + " | " +
          (s.known ? fmt(100.0 * double(s.correct) / double(s.known), 1) + "%" : "-") + " | " +
          (s.persona_turns ? fmt(100.0 * double(s.persona_ok) / double(s.persona_turns), 1) + "%" : "-") + " | " +
          fmt(wr["win_rate"].get<double>(), 1) + "% ± " + fmt(wr["standard_error"].get<double>(), 1) + " | " +
          fmt(s.turns ? s.words / double(s.turns) : 0.0, 1) + " |\n";
    std::vector<double> v;
    for (const auto& [c, val] : mt["categories"].items()) {
      if (std::find(categories.begin(), categories.end(), c) == categories.end()) categories.push_back(c);
    }
    for (const std::string& c : categories) v.push_back(mt["categories"].contains(c) ? mt["categories"][c]["both"].get<double>() : 0.0);
    radar.emplace_back(m.label, v);
  }
  md += "\nJudge score: the MT-Bench-style mean over both turns of the held-out questions. Accuracy and persona rate: the\n"
        "teacher's checker on the same answers (persona over the questions with a persona system prompt). Win rate:\n"
        "AlpacaEval-style pairwise judgments against dSFT's answers, both orders, ties half.\n\n";
  write_file_atomic(in.out_dir + "/radar.svg", radar_svg(categories, radar));

  std::vector<CurvePanel> panels;
  panels.push_back({"dSFT: training loss", {{"dSFT", metric_points(in.sft_metrics, "loss")}}});
  CurvePanel loss{"dDPO: training loss", {}}, margins{"dDPO: reward margin (chosen - rejected)", {}},
      acc{"dDPO: reward accuracy", {}};
  for (const auto& [label, path] : in.dpo_metrics) {
    loss.series.emplace_back(label, metric_points(path, "loss"));
    margins.series.emplace_back(label, metric_points(path, "rewards/margins"));
    acc.series.emplace_back(label, metric_points(path, "rewards/accuracies"));
  }
  panels.push_back(loss), panels.push_back(margins), panels.push_back(acc);
  write_file_atomic(in.out_dir + "/training.svg", curves_svg(panels));
  md += "![radar chart of the judge score per category](radar.svg)\n\n![training curves](training.svg)\n\n";
  if (!in.notes.empty()) {
    md += "## Stages\n\n";
    for (const std::string& n : in.notes) md += "- " + n + "\n";
    md += "\n";
  }

  // Three answers of the final model to held-out questions, the first under the pirate persona.
  const ReportModel& final_model = in.models.back();
  std::vector<std::pair<const ordered_json*, std::string>> picked;
  std::set<std::string> used_categories;
  // In the questions' order, not the answers' (which is the order concurrent calls finished in).
  std::map<std::string, ordered_json> answers;
  for (const ordered_json& a : read_rows(final_model.mt_bench_dir + "/answers.jsonl")) answers[a.value("question_id", "")] = a;
  for (int pass = 0; pass < 3 && picked.size() < 3; ++pass)
    for (const std::string& id : question_order) {
      const auto q = questions.find(id);
      const auto found = answers.find(id);
      if (found == answers.end() || picked.size() >= 3) continue;
      const ordered_json& a = found->second;
      if (!a.contains("turns") || !a["turns"].is_array() || a["turns"].empty()) continue;
      const bool pirate = persona_of(q->second.value("system", "")) == Persona::Pirate;
      const std::string cat = q->second.value("category", "");
      const bool take = pass == 0 ? pirate && picked.empty() : pass == 1 ? !used_categories.count(cat) : true;
      if (!take || std::any_of(picked.begin(), picked.end(), [&](const auto& p) { return p.first == &q->second; })) continue;
      picked.emplace_back(&q->second, a["turns"][0].is_string() ? a["turns"][0].get<std::string>() : "");
      used_categories.insert(cat);
    }
  md += "## " + final_model.label + " on held-out questions\n\n";
  for (const auto& [q, answer] : picked) {
    const std::string system = q->value("system", "");
    if (!system.empty()) md += "> *system:* " + quoted(system) + "  \n";
    md += "> *user:* " + quoted((*q)["turns"][0].get<std::string>()) + "  \n> *" + final_model.label + ":* " + quoted(answer) + "\n\n";
  }
  if (!in.showcase_prompt.empty()) {
    md += "## The model card's prompt (temperature 0.7, top-k 50, top-p 0.95)\n\n";
    if (!in.showcase_system.empty()) md += "> *system:* " + quoted(in.showcase_system) + "  \n";
    md += "> *user:* " + quoted(in.showcase_prompt) + "  \n> *" + final_model.label + ":* " + quoted(in.showcase_answer) + "\n";
  }
  write_file_atomic(in.out_dir + "/report.md", md);
  return md;
}

}  // namespace zephyr

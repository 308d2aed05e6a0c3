#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include "core/error.h"
#include "eval/evaluation.h"
#include "eval/judge_call.h"
#include "eval/verdict.h"
#include "feedback/prompts.h"
#include "feedback/work.h"
#include "tokenizer/chat_template.h"

namespace zephyr {

double length_controlled_win_rate(const std::vector<double>& y, const std::vector<double>& diff) {
  const size_t n = y.size();
  if (n == 0) return 0;
  double mean = 0, var = 0;
  for (double d : diff) mean += d / double(n);
  for (double d : diff) var += (d - mean) * (d - mean) / double(n);
  const double sd = std::sqrt(var);
  std::vector<double> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = sd > 0 ? diff[i] / sd : 0.0;  // no centring: zero stays "same length"
  // Newton's method on the log-likelihood of fractional labels (ties count half); a tiny ridge
  // keeps a separable case finite.
  double a = 0, b = 0;
  for (int it = 0; it < 100; ++it) {
    double ga = 0, gb = 0, haa = 1e-6, hab = 0, hbb = 1e-6;
    for (size_t i = 0; i < n; ++i) {
      const double p = 1 / (1 + std::exp(-(a + b * x[i])));
      const double w = p * (1 - p);
      ga += y[i] - p, gb += (y[i] - p) * x[i];
      haa += w, hab += w * x[i], hbb += w * x[i] * x[i];
    }
    gb -= 1e-6 * b;  // the ridge on the slope only: the intercept is the answer
    const double det = haa * hbb - hab * hab;
    if (!(det > 0)) break;
    const double da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det;
    a += std::clamp(da, -5.0, 5.0), b += std::clamp(db, -5.0, 5.0);
    if (std::fabs(da) + std::fabs(db) < 1e-12) break;
  }
  return 100 / (1 + std::exp(-a));
}

namespace {

struct Output {
  std::string instruction, output, generator;
  bool failed = false;
};

std::vector<std::string> read_instructions(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open");
  std::vector<std::string> v;
  std::set<std::string> seen;
  for_each_jsonl(in, path, [&](const ordered_json& r, size_t line) {
    if (!r.is_object() || !r.contains("instruction") || !r["instruction"].is_string())
      fail(path + ":" + std::to_string(line), "expected {\"instruction\": \"...\"}");
    if (seen.insert(r["instruction"].get<std::string>()).second) v.push_back(r["instruction"].get<std::string>());
  });
  return v;
}

// The answers of a model to every instruction, in `path` (resumable), generated where missing.
std::map<std::string, Output> answer_all(const std::vector<std::string>& instructions, const ModelSpec& spec, const WinrateConfig& c,
                                         const std::string& path, const char* what) {
  std::map<std::string, Output> got;
  std::mutex mu;
  ResumableJsonl out(path, [&](const ordered_json& r) {
    got[r.value("instruction", "")] = {r.value("instruction", ""), r["output"].is_string() ? r["output"].get<std::string>() : "",
                                       r.value("generator", ""), !r["output"].is_string()};
  });
  std::vector<const std::string*> todo;
  for (const auto& i : instructions)
    if (!got.count(i)) todo.push_back(&i);
  if (todo.empty()) return got;
  ClientOptions o = c.client;
  o.parallel = std::max(o.parallel, c.concurrency);
  auto model = make_model_client(spec, o);
  Progress bar(what, int64_t(todo.size()));
  run_parallel(todo.size(), c.concurrency, [&](size_t k) {
    ChatCall call;
    call.messages = ordered_json::array({{{"role", "user"}, {"content", *todo[k]}}});
    call.sampling.temperature = c.temperature;
    call.sampling.top_k = 0;
    call.sampling.top_p = 1.0;
    call.sampling.seed = fnv1a(*todo[k], c.seed + 1);
    call.max_tokens = c.max_tokens;
    const ChatReply r = model->complete(call);
    ordered_json row = {{"instruction", *todo[k]}, {"output", r.error.empty() ? ordered_json(r.text) : ordered_json(nullptr)},
                        {"generator", spec.label()}};
    if (!r.error.empty()) row["error"] = r.error;
    out.append(row);
    {
      std::lock_guard<std::mutex> lock(mu);
      got[*todo[k]] = {*todo[k], r.text, spec.label(), !r.error.empty()};
    }
    bar.step(r.completion_tokens, !r.error.empty(), r.retries);
  });
  return got;
}

std::map<std::string, Output> read_outputs(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open");
  std::map<std::string, Output> got;
  for_each_jsonl(in, path, [&](const ordered_json& r, size_t line) {
    if (!r.is_object() || !r.contains("instruction") || !r.contains("output") || !r["output"].is_string())
      fail(path + ":" + std::to_string(line), "expected {\"instruction\", \"output\", \"generator\"}");
    got[r["instruction"].get<std::string>()] = {r["instruction"].get<std::string>(), r["output"].get<std::string>(), r.value("generator", path)};
  });
  return got;
}

}  // namespace

WinrateResult eval_winrate(const WinrateConfig& c) {
  const std::vector<std::string> instructions = read_instructions(c.instructions);
  std::filesystem::create_directories(c.out_dir);
  const std::map<std::string, Output> mine = answer_all(instructions, c.model, c, c.out_dir + "/outputs.jsonl", "answer");
  const bool baseline_file = c.baseline.ends_with(".jsonl") || c.baseline.ends_with(".json");
  const std::map<std::string, Output> base =
      baseline_file ? read_outputs(c.baseline)
                    : answer_all(instructions, parse_model_spec(c.baseline), c, c.out_dir + "/baseline.jsonl", "baseline");
  // Judgments: every pair in both orders (order 0: the model's answer is A, 1: it is B).
  std::map<std::string, std::array<std::string, 2>> winners;
  std::mutex mu;
  ResumableJsonl out(c.out_dir + "/judgments.jsonl", [&](const ordered_json& r) {
    winners[r.value("instruction", "")][size_t(r.value("order", 0))] = r["winner"].is_string() ? r["winner"].get<std::string>() : "-";
  });
  struct Task {
    const std::string* instruction;
    int order;
  };
  std::vector<Task> todo;
  for (const auto& i : instructions) {
    auto m = mine.find(i), b = base.find(i);
    if (m == mine.end() || m->second.failed || b == base.end()) continue;
    for (int order = 0; order < 2; ++order)
      if (!winners.count(i) || winners[i][size_t(order)].empty()) todo.push_back({&i, order});
  }
  ClientOptions o = c.client;
  o.parallel = std::max(o.parallel, c.concurrency);
  std::unique_ptr<ModelClient> judge = todo.empty() ? nullptr : make_model_client(c.judge.judge, o);
  const ChatTemplate tmpl(c.judge.template_text.empty() ? prompts::kEvalPairwise : c.judge.template_text);
  const ordered_json schema = {{"type", "object"},
                               {"properties", {{"explanation", {{"type", "string"}}}, {"winner", {{"enum", {"A", "B", "tie"}}}}}},
                               {"required", {"explanation", "winner"}},
                               {"additionalProperties", false}};
  Progress bar("judge", int64_t(todo.size()));
  run_parallel(todo.size(), c.concurrency, [&](size_t k) {
    const std::string& ins = *todo[k].instruction;
    const int order = todo[k].order;
    const std::string& a = order == 0 ? mine.at(ins).output : base.at(ins).output;
    const std::string& b = order == 0 ? base.at(ins).output : mine.at(ins).output;
    std::string prompt;
    if (c.judge.judge.kind != ModelSpec::Kind::Exec) {
      try {
        prompt = tmpl.render({{"instruction", ins}, {"answer_a", a}, {"answer_b", b}});
      } catch (const Error& e) {
        fail("--pairwise-template", e.what());
      }
    }
    const ordered_json task = {{"task", "pairwise"}, {"messages", ordered_json::array({{{"role", "user"}, {"content", ins}}})},
                               {"answer_a", a}, {"answer_b", b}};
    const Verdict v = ask_judge(*judge, c.judge, prompt, schema, task, fnv1a(ins, uint64_t(order)), [](const std::string& text, ordered_json& value) {
      const std::string w = pairwise_winner(text);
      if (w.empty()) return false;
      value = w;
      return true;
    });
    ordered_json row = {{"instruction", ins}, {"order", order}, {"model_is", order == 0 ? "A" : "B"}, {"judge", c.judge.judge.label()}};
    row["winner"] = v.error.empty() ? v.value : ordered_json(nullptr);
    row["error"] = v.error.empty() ? ordered_json(nullptr) : ordered_json(v.error);
    out.append(row);
    {
      std::lock_guard<std::mutex> lock(mu);
      winners[ins][size_t(order)] = v.error.empty() ? v.value.get<std::string>() : "-";
    }
    bar.step(v.tokens, !v.error.empty(), v.retries);
  });
  // Per instruction, the model's mean outcome over both orders; per judgment, its preference and
  // the length difference for the length-controlled rate.
  WinrateResult r;
  std::vector<double> per_instruction, pref, diff;
  for (const auto& ins : instructions) {
    auto w = winners.find(ins);
    if (w == winners.end() || mine.find(ins) == mine.end() || base.find(ins) == base.end()) {
      r.failures += 1;
      continue;
    }
    double sum = 0;
    bool ok = true;
    for (int order = 0; order < 2; ++order) {
      const std::string& x = w->second[size_t(order)];
      if (x != "A" && x != "B" && x != "tie") {
        ok = false;
        break;
      }
      const double s = x == "tie" ? 0.5 : (x == "A") == (order == 0) ? 1.0 : 0.0;
      sum += s;
      pref.push_back(s);
      diff.push_back(double(mine.at(ins).output.size()) - double(base.at(ins).output.size()));
      (s == 1 ? r.wins : s == 0 ? r.losses : r.ties) += 1;
    }
    if (!ok) {
      r.failures += 1;
      if (pref.size() % 2) pref.pop_back(), diff.pop_back();
      continue;
    }
    per_instruction.push_back(sum / 2);
    r.model_length += double(mine.at(ins).output.size());
    r.baseline_length += double(base.at(ins).output.size());
  }
  r.instructions = int64_t(per_instruction.size());
  if (r.instructions > 0) {
    const double n = double(r.instructions);
    double mean = 0, var = 0;
    for (double s : per_instruction) mean += s;
    mean /= n;
    for (double s : per_instruction) var += (s - mean) * (s - mean);
    r.win_rate = 100 * mean;
    r.standard_error = r.instructions > 1 ? 100 * std::sqrt(var / (n - 1) / n) : 0;
    r.model_length /= n, r.baseline_length /= n;
    r.length_controlled = length_controlled_win_rate(pref, diff);
  }
  const std::string baseline_name = baseline_file ? c.baseline : parse_model_spec(c.baseline).label();
  write_file_atomic(c.out_dir + "/summary.json",
                    ordered_json{{"model", c.model.label()}, {"baseline", baseline_name}, {"judge", c.judge.judge.label()},
                                 {"win_rate", r.win_rate}, {"standard_error", r.standard_error}, {"length_controlled_win_rate", r.length_controlled},
                                 {"instructions", r.instructions}, {"failures", r.failures}, {"wins", r.wins}, {"losses", r.losses}, {"ties", r.ties},
                                 {"avg_length", r.model_length}, {"baseline_avg_length", r.baseline_length}}
                            .dump(2) + "\n");
  write_file_atomic(c.out_dir + "/summary.md",
                    "| model | baseline | win rate | standard error | length-controlled | avg length | baseline avg length | instructions |\n"
                    "|---|---|---|---|---|---|---|---|\n| " + c.model.label() + " | " + baseline_name + " | " + two_decimals(r.win_rate) + "% | " +
                        two_decimals(r.standard_error) + " | " + two_decimals(r.length_controlled) + "% | " + two_decimals(r.model_length) + " | " + two_decimals(r.baseline_length) +
                        " | " + std::to_string(r.instructions) + " |\n");
  return r;
}

}  // namespace zephyr

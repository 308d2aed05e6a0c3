#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/error.h"
#include "eval/evaluation.h"
#include "eval/judge_call.h"
#include "eval/verdict.h"
#include "feedback/prompts.h"
#include "feedback/work.h"
#include "tokenizer/chat_template.h"

namespace zephyr {

namespace {

// MT-Bench's sampling temperatures by category (FastChat's), 0.7 for any other.
double category_temperature(const std::string& c) {
  static const std::map<std::string, double> t = {{"writing", 0.7}, {"roleplay", 0.7}, {"extraction", 0.0}, {"math", 0.0},
                                                  {"coding", 0.0},  {"reasoning", 0.0}, {"stem", 0.1},      {"humanities", 0.1}};
  auto it = t.find(c);
  return it == t.end() ? 0.7 : it->second;
}

// Categories whose judge sees the reference answer (when there is one).
bool wants_reference(const std::string& c) { return c == "math" || c == "reasoning" || c == "coding"; }

struct Question {
  std::string id, category, system;  // system: an optional system prompt before the turns
  std::vector<std::string> turns, reference;
};

std::string id_text(const ordered_json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::vector<Question> read_questions(const std::string& path, const std::string& reference_path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open");
  std::vector<Question> qs;
  for_each_jsonl(in, path, [&](const ordered_json& r, size_t line) {
    const std::string where = path + ":" + std::to_string(line);
    if (!r.is_object() || !r.contains("question_id") || !r.contains("turns") || !r["turns"].is_array() || r["turns"].size() != 2)
      fail(where, "expected {\"question_id\", \"category\", \"turns\": [two strings], \"reference\"?, \"system\"?}");
    Question q;
    q.id = id_text(r["question_id"]);
    q.category = r.value("category", "general");
    if (r.contains("system")) {
      if (!r["system"].is_string()) fail(where, "\"system\" must be a string");
      q.system = r["system"].get<std::string>();
    }
    for (const auto& t : r["turns"]) {
      if (!t.is_string()) fail(where, "turns must be strings");
      q.turns.push_back(t.get<std::string>());
    }
    if (r.contains("reference") && r["reference"].is_array())
      for (const auto& t : r["reference"]) q.reference.push_back(t.is_string() ? t.get<std::string>() : t.dump());
    qs.push_back(std::move(q));
  });
  if (!reference_path.empty()) {  // FastChat's reference answers: {"question_id", "choices": [{"turns": [...]}]}
    std::ifstream rin(reference_path);
    if (!rin) fail(reference_path, "cannot open");
    std::map<std::string, std::vector<std::string>> refs;
    for_each_jsonl(rin, reference_path, [&](const ordered_json& r, size_t line) {
      const ordered_json* turns = nullptr;
      if (r.contains("choices") && r["choices"].is_array() && !r["choices"].empty()) turns = &r["choices"][0]["turns"];
      else if (r.contains("reference")) turns = &r["reference"];
      if (!r.contains("question_id") || !turns || !turns->is_array())
        fail(reference_path + ":" + std::to_string(line), "expected {\"question_id\", \"choices\": [{\"turns\": [...]}]} or {\"question_id\", \"reference\": [...]}");
      auto& v = refs[id_text(r["question_id"])];
      for (const auto& t : *turns) v.push_back(t.is_string() ? t.get<std::string>() : t.dump());
    });
    for (Question& q : qs)
      if (refs.count(q.id)) q.reference = refs[q.id];
  }
  return qs;
}

void write_summary(const std::string& dir, const MtBenchResult& r) {
  ordered_json cats = ordered_json::object();
  std::string md = "| category | turn 1 | turn 2 | both |\n|---|---|---|---|\n";
  const auto row = [&](const std::string& name, const TurnMeans& m) {
    md += "| " + name + " | " + (m.n1 ? two_decimals(m.turn1) : "-") + " | " + (m.n2 ? two_decimals(m.turn2) : "-") + " | " +
          (m.n1 + m.n2 ? two_decimals(m.both) : "-") + " |\n";
    return ordered_json{{"turn1", m.turn1}, {"turn2", m.turn2}, {"both", m.both}, {"n_turn1", m.n1}, {"n_turn2", m.n2}};
  };
  for (const auto& c : r.categories) cats[c] = row(c, r.by_category.at(c));
  const ordered_json overall = row("**overall**", r.overall);
  write_file_atomic(dir + "/summary.json",
                    ordered_json{{"model", r.model}, {"categories", cats}, {"overall", overall}, {"failures", r.failures}}.dump(2) + "\n");
  std::string text = "MT-Bench: " + r.model + "\n\n" + md;
  if (r.failures) text.append("\n").append(std::to_string(r.failures)).append(" judgments failed (not scored)\n");
  write_file_atomic(dir + "/summary.md", text);
  std::vector<double> both;
  for (const auto& c : r.categories) both.push_back(r.by_category.at(c).both);
  write_file_atomic(dir + "/radar.svg", radar_svg(r.categories, {{r.model, both}}));
}

}  // namespace

MtBenchResult mt_bench_means(const std::vector<ordered_json>& judgments, const std::vector<std::string>& categories) {
  MtBenchResult r;
  r.categories = categories;
  std::map<std::string, std::array<double, 2>> sum;
  std::array<double, 2> all{};
  for (const auto& c : categories) r.by_category[c] = {};
  for (const auto& j : judgments) {
    if (!j.contains("rating") || !j["rating"].is_number()) {
      r.failures += 1;
      continue;
    }
    const std::string c = j.value("category", "general");
    const int t = j.value("turn", 1) == 2 ? 1 : 0;
    if (!r.by_category.count(c)) r.categories.push_back(c), r.by_category[c] = {};
    TurnMeans& m = r.by_category[c];
    const double v = j["rating"].get<double>();
    sum[c][size_t(t)] += v, all[size_t(t)] += v;
    (t ? m.n2 : m.n1) += 1;
    (t ? r.overall.n2 : r.overall.n1) += 1;
  }
  const auto finish = [](TurnMeans& m, const std::array<double, 2>& s) {
    m.turn1 = m.n1 ? s[0] / double(m.n1) : 0;
    m.turn2 = m.n2 ? s[1] / double(m.n2) : 0;
    m.both = m.n1 + m.n2 ? (s[0] + s[1]) / double(m.n1 + m.n2) : 0;
  };
  for (auto& [c, m] : r.by_category) finish(m, sum[c]);
  finish(r.overall, all);
  return r;
}

MtBenchResult eval_mt_bench(const MtBenchConfig& c) {
  const std::vector<Question> qs = read_questions(c.questions, c.reference);
  std::filesystem::create_directories(c.out_dir);
  ClientOptions o = c.client;
  o.parallel = std::max(o.parallel, c.concurrency);
  auto model = make_model_client(c.model, o);
  // Answers: turn 1, then turn 2 with turn 1 and its own answer in the conversation.
  std::map<std::string, ordered_json> answers;
  std::mutex mu;
  {
    ResumableJsonl out(c.out_dir + "/answers.jsonl", [&](const ordered_json& r) { answers[id_text(r["question_id"])] = r; });
    std::vector<const Question*> todo;
    for (const Question& q : qs)
      if (!answers.count(q.id)) todo.push_back(&q);
    Progress bar("answer", int64_t(todo.size()));
    run_parallel(todo.size(), c.concurrency, [&](size_t i) {
      const Question& q = *todo[i];
      ordered_json messages = ordered_json::array();
      if (!q.system.empty()) messages.push_back({{"role", "system"}, {"content", q.system}});
      ordered_json turns = ordered_json::array();
      std::string error;
      int64_t tokens = 0;
      for (size_t t = 0; t < 2 && error.empty(); ++t) {
        messages.push_back({{"role", "user"}, {"content", q.turns[t]}});
        ChatCall call;
        call.messages = messages;
        call.sampling.temperature = c.temperature >= 0 ? c.temperature : category_temperature(q.category);
        call.sampling.top_k = 0;
        call.sampling.top_p = 1.0;
        call.sampling.seed = fnv1a(q.id + "/" + std::to_string(t), c.seed + 1);
        call.max_tokens = c.max_tokens;
        const ChatReply r = model->complete(call);
        tokens += r.completion_tokens;
        if (!r.error.empty()) error = r.error;
        messages.push_back({{"role", "assistant"}, {"content", r.text}});
        turns.push_back(r.text);
      }
      ordered_json row = {{"question_id", q.id}, {"category", q.category}, {"model", c.model.label()}, {"turns", turns}};
      if (!error.empty()) row["error"] = error;
      out.append(row);
      {
        std::lock_guard<std::mutex> lock(mu);
        answers[q.id] = row;
      }
      bar.step(tokens, !error.empty(), 0);
    });
  }
  // Judgments: each turn graded on its own, 1-10.
  std::vector<ordered_json> judgments;
  std::set<std::string> judged;
  ResumableJsonl out(c.out_dir + "/judgments.jsonl", [&](const ordered_json& r) {
    judged.insert(id_text(r["question_id"]) + "/" + std::to_string(r.value("turn", 1)));
    judgments.push_back(r);
  });
  struct Task {
    const Question* q;
    int turn;
  };
  std::vector<Task> todo;
  for (const Question& q : qs)
    for (int t = 1; t <= 2; ++t)
      if (!judged.count(q.id + "/" + std::to_string(t)) && !answers[q.id].contains("error")) todo.push_back({&q, t});
  auto judge = make_model_client(c.judge.judge, o);
  const ChatTemplate tmpl(c.judge.template_text.empty() ? prompts::kEvalSingle : c.judge.template_text);
  const ordered_json schema = {{"type", "object"},
                               {"properties", {{"explanation", {{"type", "string"}}}, {"rating", {{"type", "integer"}, {"minimum", 1}, {"maximum", 10}}}}},
                               {"required", {"explanation", "rating"}},
                               {"additionalProperties", false}};
  Progress bar("judge", int64_t(todo.size()));
  run_parallel(todo.size(), c.concurrency, [&](size_t i) {
    const Question& q = *todo[i].q;
    const int turn = todo[i].turn;
    const ordered_json& a = answers[q.id];
    ordered_json messages = ordered_json::array();
    if (!q.system.empty()) messages.push_back({{"role", "system"}, {"content", q.system}});
    messages.push_back({{"role", "user"}, {"content", q.turns[0]}});
    if (turn == 2) {
      messages.push_back({{"role", "assistant"}, {"content", a["turns"][0]}});
      messages.push_back({{"role", "user"}, {"content", q.turns[1]}});
    }
    const std::string answer = a["turns"][size_t(turn - 1)].get<std::string>();
    const ordered_json reference = wants_reference(q.category) && q.reference.size() >= size_t(turn) ? ordered_json(q.reference[size_t(turn - 1)])
                                                                                                       : ordered_json(nullptr);
    std::string prompt;
    if (c.judge.judge.kind != ModelSpec::Kind::Exec) {
      try {
        prompt = tmpl.render({{"messages", messages}, {"answer", answer}, {"reference", reference}, {"turn", turn}});
      } catch (const Error& e) {
        fail("--single-template", e.what());
      }
    }
    const ordered_json task = {{"task", "single"}, {"messages", messages}, {"answer", answer}, {"reference", reference}, {"turn", turn}};
    const Verdict v = ask_judge(*judge, c.judge, prompt, schema, task, fnv1a(q.id, uint64_t(turn)),
                                [&](const std::string& text, ordered_json& value) {
                                  const double r = single_rating(text, c.judge.judge.kind == ModelSpec::Kind::Exec);
                                  if (r < 0) return false;
                                  value = r;
                                  return true;
                                });
    ordered_json row = {{"question_id", q.id}, {"category", q.category}, {"turn", turn}, {"judge", c.judge.judge.label()}};
    row["rating"] = v.error.empty() ? v.value : ordered_json(nullptr);
    row["error"] = v.error.empty() ? ordered_json(nullptr) : ordered_json(v.error);
    out.append(row);
    {
      std::lock_guard<std::mutex> lock(mu);
      judgments.push_back(row);
    }
    bar.step(v.tokens, !v.error.empty(), v.retries);
  });
  std::vector<std::string> categories;
  for (const Question& q : qs)
    if (std::find(categories.begin(), categories.end(), q.category) == categories.end()) categories.push_back(q.category);
  MtBenchResult r = mt_bench_means(judgments, categories);
  r.model = c.model.label();
  write_summary(c.out_dir, r);
  return r;
}

std::string eval_chart(const std::vector<std::string>& dirs, const std::string& out_svg) {
  std::vector<std::string> categories;
  std::vector<std::pair<std::string, ordered_json>> runs;
  for (const std::string& d : dirs) {
    const std::string path = d + "/summary.json";
    const ordered_json s = try_parse_ordered_json(read_file(path)).value_or(ordered_json());
    if (!s.is_object()) fail(path, "not a JSON object (is it `zephyr eval mt-bench`'s summary?)");
    if (!s.contains("categories") || !s["categories"].is_object()) fail(path, "expected \"categories\" (zephyr eval mt-bench's summary)");
    for (const auto& [c, v] : s["categories"].items())
      if (std::find(categories.begin(), categories.end(), c) == categories.end()) categories.push_back(c);
    runs.emplace_back(s.value("model", d), s);
  }
  std::vector<std::pair<std::string, std::vector<double>>> models;
  std::string md = "| model |";
  for (const auto& c : categories) md += " " + c + " |";
  md += " overall |\n|---|";
  for (size_t i = 0; i <= categories.size(); ++i) md += "---|";
  md += "\n";
  for (const auto& [name, s] : runs) {
    std::vector<double> v;
    md += "| " + name + " |";
    for (const auto& c : categories) {
      const bool has = s["categories"].contains(c);
      v.push_back(has ? s["categories"][c]["both"].get<double>() : 0.0);
      md.append(" ").append(has ? two_decimals(v.back()) : "-").append(" |");
    }
    md.append(" ").append(two_decimals(s["overall"]["both"].get<double>())).append(" |\n");
    models.emplace_back(name, v);
  }
  write_file_atomic(out_svg, radar_svg(categories, models));
  return md;
}

}  // namespace zephyr

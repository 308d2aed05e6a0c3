#include "feedback/feedback.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/rng.h"
#include "feedback/judgment.h"
#include "feedback/prompts.h"
#include "feedback/work.h"
#include "tokenizer/chat_template.h"

namespace zephyr {

namespace {

using Clock = std::chrono::steady_clock;

std::string hex64(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", (unsigned long long)v);
  return b;
}

std::string key3(const std::string& id, const std::string& model, int64_t sample) {
  return id + '\x1f' + model + '\x1f' + std::to_string(sample);
}

ordered_json judge_schema(size_t n) {
  ordered_json aspect = {{"type", "integer"}, {"minimum", 1}, {"maximum", 5}};
  ordered_json item = {{"type", "object"},
                       {"properties",
                        {{"rationale", {{"type", "string"}}},
                         {"instruction_following", aspect},
                         {"truthfulness", aspect},
                         {"honesty", aspect},
                         {"helpfulness", aspect},
                         {"overall", {{"type", "integer"}, {"minimum", 1}, {"maximum", 10}}}}},
                       {"required", {"rationale", "instruction_following", "truthfulness", "honesty", "helpfulness", "overall"}},
                       {"additionalProperties", false}};
  return {{"type", "object"},
          {"properties", {{"scores", {{"type", "array"}, {"items", item}, {"minItems", n}, {"maxItems", n}}}}},
          {"required", {"scores"}},
          {"additionalProperties", false}};
}

}  // namespace

std::vector<PromptRow> read_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open");
  std::vector<PromptRow> rows;
  std::set<std::string> seen;
  for_each_jsonl(in, path, [&](const ordered_json& row, size_t line) {
    const std::string where = path + ":" + std::to_string(line);
    PromptRow p;
    if (!row.is_object()) fail(where, "expected {\"prompt\": ...} or {\"messages\": [...]}");
    if (row.contains("messages")) {
      if (!row["messages"].is_array() || row["messages"].empty()) fail(where, "\"messages\" must be a non-empty list");
      p.messages = row["messages"];
      while (!p.messages.empty() && p.messages.back().value("role", "") == "assistant") p.messages.erase(p.messages.size() - 1);
      if (p.messages.empty()) fail(where, "no user message to answer");
    } else if (row.contains("prompt") && row["prompt"].is_string()) {
      p.messages = ordered_json::array({{{"role", "user"}, {"content", row["prompt"]}}});
    } else {
      fail(where, "expected {\"prompt\": \"...\"} or {\"messages\": [...]}");
    }
    if (row.contains("prompt_id") && !row["prompt_id"].is_null())
      p.id = row["prompt_id"].is_string() ? row["prompt_id"].get<std::string>() : row["prompt_id"].dump();
    else
      p.id = hex64(fnv1a(p.messages.dump()));
    if (!seen.insert(p.id).second) return;  // the same prompt twice: once
    rows.push_back(std::move(p));
  });
  return rows;
}

FeedbackSummary feedback_generate(const GenerateConfig& c) {
  refuse_output_over_input(c.out, c.prompts);
  if (c.generators.empty()) fail_field("model", "no generator (give --model SPEC or a config listing generators)");
  std::set<std::string> labels;
  for (const GeneratorConfig& g : c.generators)
    if (!labels.insert(g.label()).second)
      fail_field("model", "two generators are both called \"" + g.label() + "\"; give them distinct names (a config's \"name\")");
  const std::vector<PromptRow> prompts = read_prompts(c.prompts);
  std::set<std::string> done;
  ResumableJsonl out(c.out, [&](const ordered_json& r) {
    done.insert(key3(r.value("prompt_id", ""), r.value("model", ""), r.value("sample", int64_t(0))));
  });
  struct Task {
    const PromptRow* prompt;
    size_t gen;
    int sample;
  };
  std::vector<Task> tasks;
  FeedbackSummary sum;
  // Generator by generator, so the calls in flight mostly share a model and decode as one batch.
  for (size_t g = 0; g < c.generators.size(); ++g)
    for (const PromptRow& p : prompts)
      for (int k = 0; k < c.generators[g].completions; ++k) {
        if (done.count(key3(p.id, c.generators[g].label(), k))) ++sum.skipped;
        else tasks.push_back({&p, g, k});
      }
  // One client per model: generators that sample one model at two temperatures share it.
  std::map<std::string, std::shared_ptr<ModelClient>> by_spec;
  std::vector<std::shared_ptr<ModelClient>> clients;
  for (const GeneratorConfig& g : c.generators) {
    ClientOptions o = c.client;
    o.parallel = std::max(o.parallel, c.concurrency);
    std::shared_ptr<ModelClient>& client = by_spec[g.spec.label()];
    if (!client) client = make_model_client(g.spec, o);
    clients.push_back(client);
  }
  if (sum.skipped) std::fprintf(stderr, "feedback generate: %lld completions already in %s, %zu to go\n", (long long)sum.skipped, c.out.c_str(), tasks.size());
  Progress bar("generate", int64_t(tasks.size()));
  const auto t0 = Clock::now();
  std::atomic<int64_t> failed{0}, retries{0}, tokens{0};
  run_parallel(tasks.size(), c.concurrency, [&](size_t i) {
    const Task& t = tasks[i];
    const GeneratorConfig& g = c.generators[t.gen];
    ChatCall call;
    call.messages = t.prompt->messages;
    call.sampling = g.sampling;
    call.sampling.seed = fnv1a(t.prompt->id + '\x1f' + g.label() + '\x1f' + std::to_string(t.sample), c.seed * 0x9E3779B97F4A7C15ULL + 1);
    call.max_tokens = g.max_tokens;
    const ChatReply r = clients[t.gen]->complete(call);
    ordered_json row = {{"prompt_id", t.prompt->id}, {"messages", t.prompt->messages}, {"model", g.label()}, {"sample", t.sample}};
    if (r.error.empty()) {
      row["completion"] = r.text;
      row["finish_reason"] = r.finish_reason;
      row["usage"] = {{"prompt_tokens", r.prompt_tokens}, {"completion_tokens", r.completion_tokens}};
    } else {
      row["completion"] = nullptr;
      row["error"] = r.error;
      failed += 1;
    }
    out.append(row);
    retries += r.retries;
    tokens += r.completion_tokens;
    bar.step(r.completion_tokens, !r.error.empty(), r.retries);
  });
  sum.done = int64_t(tasks.size()) - failed;
  sum.failed = failed, sum.retries = retries, sum.tokens = tokens;
  sum.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return sum;
}

FeedbackSummary feedback_judge(const JudgeConfig& c) {
  refuse_output_over_input(c.out, c.in);
  // The completions by prompt, in a fixed order (model, sample): the judge sees the same question
  // however the generation run interleaved its rows.
  struct Group {
    std::string id;
    ordered_json messages;
    std::vector<ordered_json> completions;
  };
  std::vector<Group> groups;
  std::map<std::string, size_t> index;
  {
    std::ifstream in(c.in);
    if (!in) fail(c.in, "cannot open");
    for_each_jsonl(in, c.in, [&](const ordered_json& r, size_t line) {
      if (!r.is_object() || !r.contains("prompt_id") || !r.contains("messages"))
        fail(c.in + ":" + std::to_string(line), "expected a row of `zephyr feedback generate` ({\"prompt_id\", \"messages\", \"completion\", ...})");
      if (!r.contains("completion") || !r["completion"].is_string()) return;  // a failed generation
      const std::string id = r["prompt_id"].get<std::string>();
      auto [it, fresh] = index.emplace(id, groups.size());
      if (fresh) groups.push_back({id, r["messages"], {}});
      groups[it->second].completions.push_back({{"model", r.value("model", "")}, {"sample", r.value("sample", 0)}, {"completion", r["completion"]}});
    });
  }
  for (Group& g : groups)
    std::sort(g.completions.begin(), g.completions.end(), [](const ordered_json& a, const ordered_json& b) {
      return std::make_pair(a["model"].get<std::string>(), a["sample"].get<int64_t>()) <
             std::make_pair(b["model"].get<std::string>(), b["sample"].get<int64_t>());
    });
  std::set<std::string> done;
  ResumableJsonl out(c.out, [&](const ordered_json& r) { done.insert(r.value("prompt_id", "")); });
  std::vector<const Group*> todo;
  FeedbackSummary sum;
  for (const Group& g : groups) (done.count(g.id) ? sum.skipped += 1 : (todo.push_back(&g), 0));
  const ChatTemplate tmpl(c.template_text.empty() ? prompts::kFeedbackJudge : c.template_text);
  ClientOptions o = c.client;
  o.parallel = std::max(o.parallel, c.concurrency);
  auto judge = make_model_client(c.judge, o);
  if (sum.skipped) std::fprintf(stderr, "feedback judge: %lld prompts already in %s, %zu to go\n", (long long)sum.skipped, c.out.c_str(), todo.size());
  Progress bar("judge", int64_t(todo.size()));
  const auto t0 = Clock::now();
  std::atomic<int64_t> failed{0}, retries{0}, tokens{0};
  run_parallel(todo.size(), c.concurrency, [&](size_t i) {
    const Group& g = *todo[i];
    ordered_json texts = ordered_json::array();
    for (const auto& x : g.completions) texts.push_back(x["completion"]);
    ordered_json scores;
    std::string error;
    int tries = 0;
    int64_t used = 0;
    for (; tries <= c.retries; ++tries) {
      if (c.judge.kind == ModelSpec::Kind::Exec) {
        std::string err;
        const ordered_json r = judge->run({{"task", "feedback"}, {"messages", g.messages}, {"completions", texts}}, err);
        if (err.empty() && r.is_object() && parse_judgment(r.dump(), texts.size(), scores)) break;
        error = err.empty() ? "exec judge: expected {\"scores\": [" + std::to_string(texts.size()) + " objects with \"overall\" in 1..10]}, got " +
                                  r.dump().substr(0, 200)
                            : err;
        continue;
      }
      ChatCall call;
      try {
        call.messages = ordered_json::array(
            {{{"role", "user"}, {"content", tmpl.render({{"messages", g.messages}, {"completions", texts}, {"n", texts.size()}})}}});
      } catch (const Error& e) {
        fail("--template", e.what());
      }
      call.sampling.temperature = tries == 0 ? 0.0 : 0.7;  // a retry samples another reply
      call.sampling.seed = fnv1a(g.id, c.seed + uint64_t(tries));
      call.max_tokens = c.max_tokens;
      call.json_schema = judge_schema(texts.size());
      const ChatReply r = judge->complete(call);
      retries += r.retries;
      used += r.completion_tokens;
      if (!r.error.empty()) {
        error = r.error;
        continue;
      }
      if (parse_judgment(r.text, texts.size(), scores)) break;
      error = "unparsable judgment: " + r.text.substr(0, 200);
    }
    const bool ok = tries <= c.retries;
    ordered_json completions = ordered_json::array();
    for (size_t k = 0; k < g.completions.size(); ++k) {
      ordered_json x = g.completions[k];
      x["scores"] = ok ? scores[k] : ordered_json(nullptr);
      completions.push_back(x);
    }
    ordered_json row = {{"prompt_id", g.id}, {"messages", g.messages}, {"completions", completions}, {"judge", c.judge.label()}};
    row["error"] = ok ? ordered_json(nullptr) : ordered_json(error);
    if (!ok) failed += 1;
    out.append(row);
    tokens += used;
    bar.step(used, !ok, std::min(tries, c.retries));
  });
  sum.done = int64_t(todo.size()) - failed;
  sum.failed = failed, sum.retries = retries, sum.tokens = tokens;
  sum.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return sum;
}

FeedbackSummary feedback_binarize(const BinarizeConfig& c) {
  refuse_output_over_input(c.out, c.in);
  if (c.strategy != "random" && c.strategy != "worst") fail_field("strategy", "must be random or worst, got " + c.strategy);
  std::ifstream in(c.in);
  if (!in) fail(c.in, "cannot open");
  FeedbackSummary sum;
  std::string text;
  std::vector<std::pair<std::string, std::string>> rows;  // prompt_id, line
  for_each_jsonl(in, c.in, [&](const ordered_json& r, size_t line) {
    if (!r.is_object() || !r.contains("completions") || !r["completions"].is_array())
      fail(c.in + ":" + std::to_string(line), "expected a row of `zephyr feedback judge` ({\"prompt_id\", \"messages\", \"completions\"})");
    struct Scored {
      std::string text;
      double overall;
    };
    std::vector<Scored> scored;
    for (const auto& x : r["completions"])
      if (x.contains("scores") && x["scores"].is_object() && x["scores"].contains("overall") && x["scores"]["overall"].is_number() &&
          x.contains("completion") && x["completion"].is_string())
        scored.push_back({x["completion"].get<std::string>(), x["scores"]["overall"].get<double>()});
    if (scored.size() < 2) {
      sum.too_few += 1;
      return;
    }
    size_t best = 0;
    for (size_t i = 1; i < scored.size(); ++i)
      if (scored[i].overall > scored[best].overall) best = i;
    std::vector<size_t> lower;
    for (size_t i = 0; i < scored.size(); ++i)
      if (scored[i].overall < scored[best].overall) lower.push_back(i);
    if (lower.empty()) {
      sum.ties += 1;
      return;
    }
    size_t worse = lower[0];
    if (c.strategy == "worst") {
      for (size_t i : lower)
        if (scored[i].overall < scored[worse].overall) worse = i;
    } else {
      Rng rng(fnv1a(r.value("prompt_id", ""), c.seed));
      worse = lower[size_t(rng.next() % lower.size())];
    }
    const ordered_json& messages = r["messages"];
    std::string prompt;
    for (const auto& m : messages)
      if (m.value("role", "") == "user") prompt = m.value("content", "");
    ordered_json chosen = messages, rejected = messages;
    chosen.push_back({{"role", "assistant"}, {"content", scored[best].text}});
    rejected.push_back({{"role", "assistant"}, {"content", scored[worse].text}});
    rows.emplace_back(r.value("prompt_id", ""), line_of({{"prompt_id", r.value("prompt_id", "")}, {"prompt", prompt}, {"chosen", chosen},
                                                        {"rejected", rejected}, {"score_chosen", scored[best].overall},
                                                        {"score_rejected", scored[worse].overall}}));
    sum.pairs += 1;
  });
  // In prompt_id order: judge appends rows as its calls finish, so the input's order varies from
  // run to run, and the pairs' order (dpo's data order) must not.
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [_, line] : rows) text += line;
  write_file_atomic(c.out, text);
  return sum;
}

}  // namespace zephyr

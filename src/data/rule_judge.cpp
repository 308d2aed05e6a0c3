#include "data/rule_judge.h"

#include "data/teacher.h"

namespace zephyr {

namespace {

ordered_json grade(const AnswerCheck& c) {
  const std::string why = std::string(c.correct ? "correct" : "wrong (expected " + c.expected + ")") + (c.persona ? ", in persona" : ", out of persona") +
                          (c.length_ok ? "" : ", too long");
  return {{"overall", c.score()}, {"correct", c.correct}, {"persona", c.persona}, {"length_ok", c.length_ok}, {"rationale", why}};
}

bool string_field(const ordered_json& task, const char* key) { return task.contains(key) && task[key].is_string(); }

}  // namespace

ordered_json rule_judge(const ordered_json& task) {
  if (!task.is_object() || !string_field(task, "task") || !task.contains("messages") || !task["messages"].is_array())
    return {{"error", "expected {\"task\", \"messages\", ...}"}};
  const std::string kind = task["task"].get<std::string>();
  const ordered_json& messages = task["messages"];
  auto check = [&](const std::string& answer, std::string& error) {
    const AnswerCheck c = check_answer(messages, answer);
    if (!c.known) error = "the last user turn is not one of the teacher's questions; use a model judge for other data";
    return c;
  };
  std::string error;
  if (kind == "feedback") {
    if (!task.contains("completions") || !task["completions"].is_array()) return {{"error", "feedback: expected \"completions\": [...]"}};
    ordered_json scores = ordered_json::array();
    for (const auto& c : task["completions"]) {
      const AnswerCheck g = check(c.is_string() ? c.get<std::string>() : "", error);
      if (!error.empty()) return {{"error", error}};
      scores.push_back(grade(g));
    }
    return {{"scores", scores}};
  }
  if (kind == "single") {
    if (!string_field(task, "answer")) return {{"error", "single: expected \"answer\""}};
    const AnswerCheck g = check(task["answer"].get<std::string>(), error);
    if (!error.empty()) return {{"error", error}};
    return {{"rating", g.score()}, {"explanation", grade(g)["rationale"]}};
  }
  if (kind == "pairwise") {
    if (!string_field(task, "answer_a") || !string_field(task, "answer_b")) return {{"error", "pairwise: expected \"answer_a\" and \"answer_b\""}};
    const AnswerCheck a = check(task["answer_a"].get<std::string>(), error), b = check(task["answer_b"].get<std::string>(), error);
    if (!error.empty()) return {{"error", error}};
    const int sa = a.score(), sb = b.score();
    return {{"winner", sa > sb ? "A" : sb > sa ? "B" : "tie"},
            {"explanation", "A " + std::to_string(sa) + "/10, B " + std::to_string(sb) + "/10"}};
  }
  return {{"error", "unknown task \"" + kind + "\" (expected feedback, single or pairwise)"}};
}

}  // namespace zephyr

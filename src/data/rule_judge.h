// The rule-based judge, the recipe's stand-in for GPT-4: it answers the judge tasks of
// `feedback judge` and `eval` through the exec: protocol with check_answer's grades (correctness,
// persona, length -> 1..10), so it can be swapped for a model judge without touching the stages.
#pragma once
#include "io/json_file.h"

namespace zephyr {

// {"task": "feedback", "messages", "completions"} -> {"scores": [{"overall", "correct", "persona", "length_ok", "rationale"}]}
// {"task": "single", "messages", "answer"}         -> {"rating", "explanation"}
// {"task": "pairwise", "messages", "answer_a", "answer_b"} -> {"winner": "A" | "B" | "tie", "explanation"}
// A question outside the teacher's domain, or a malformed task: {"error": "..."}.
ordered_json rule_judge(const ordered_json& task);

}  // namespace zephyr

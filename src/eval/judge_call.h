// Asking a judge for one verdict: the rendered instructions as the user's message to a model
// judge (its answer constrained to a schema), or a task object to an exec: judge; the reply
// parsed, re-asked when it does not parse, and never guessed.
#pragma once
#include <functional>
#include <string>

#include "eval/evaluation.h"

namespace zephyr {

struct Verdict {
  ordered_json value;  // what parse() kept
  std::string error;   // non-empty: no verdict after the retries
  int retries = 0;
  int64_t tokens = 0;
};

// parse(text or exec output, value) -> whether it is a verdict.
Verdict ask_judge(ModelClient& judge, const JudgeSettings& s, const std::string& prompt, const ordered_json& schema,
                  const ordered_json& exec_task, uint64_t seed, const std::function<bool(const std::string&, ordered_json&)>& parse);

// A score for the summaries' tables: two decimals.
std::string two_decimals(double v);

}  // namespace zephyr

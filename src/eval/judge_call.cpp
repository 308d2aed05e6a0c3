#include "eval/judge_call.h"

#include <cstdio>
#include <cstdlib>

namespace zephyr {

std::string two_decimals(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

Verdict ask_judge(ModelClient& judge, const JudgeSettings& s, const std::string& prompt, const ordered_json& schema,
                  const ordered_json& exec_task, uint64_t seed, const std::function<bool(const std::string&, ordered_json&)>& parse) {
  Verdict v;
  for (int attempt = 0; attempt <= s.retries; ++attempt) {
    if (attempt > 0) v.retries += 1;
    std::string text, error;
    if (judge.spec().kind == ModelSpec::Kind::Exec) {
      const ordered_json out = judge.run(exec_task, error);
      if (!error.empty()) {
        v.error = error;
        continue;
      }
      text = out.dump();
    } else {
      ChatCall call;
      call.messages = ordered_json::array({{{"role", "user"}, {"content", prompt}}});
      call.sampling.temperature = attempt == 0 ? 0.0 : 0.7;  // a retry samples another reply
      call.sampling.seed = seed + uint64_t(attempt);
      call.max_tokens = s.max_tokens;
      call.json_schema = schema;
      const ChatReply r = judge.complete(call);
      v.tokens += r.completion_tokens;
      if (!r.error.empty()) {
        v.error = r.error;
        continue;
      }
      text = r.text;
    }
    if (parse(text, v.value)) {
      v.error.clear();
      return v;
    }
    v.error = "unparsable verdict: " + text.substr(0, 200);
  }
  v.value = nullptr;
  return v;
}

}  // namespace zephyr

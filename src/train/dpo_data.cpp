#include "train/dpo_data.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/cross_entropy.h"
#include "tokenizer/conversation.h"

namespace zephyr {

namespace {

std::vector<int> ints(const ordered_json& row, const char* key, const std::string& where) {
  if (!row.contains(key) || !row[key].is_array()) fail(where, std::string("\"") + key + "\" must be a list of integers");
  std::vector<int> v;
  for (auto& x : row[key]) {
    const std::optional<int> id = json_int(x);
    if (!id) fail(where, std::string("\"") + key + "\" must be a list of integers (32-bit), got " + x.dump().substr(0, 40));
    v.push_back(*id);
  }
  return v;
}

// The conversation before the answer and the answer itself, from a message list or a string.
std::pair<ordered_json, std::string> split_answer(const ordered_json& side, const char* key, const std::string& where) {
  if (side.is_string()) return {ordered_json::array(), side.get<std::string>()};
  if (!side.is_array() || side.empty()) fail(where, std::string("\"") + key + "\" must be a message list or a string");
  const ordered_json& last = side.back();
  if (!last.is_object() || last.value("role", std::string()) != "assistant" || !last.contains("content") ||
      !last["content"].is_string())
    fail(where, std::string("the last message of \"") + key + "\" must be the assistant's answer");
  return {ordered_json(side.begin(), side.end() - 1), last["content"].get<std::string>()};
}

void truncate(std::vector<int>& prompt, std::vector<int>& a, std::vector<int>& b, int64_t max_length, int64_t max_prompt) {
  const size_t longer = std::max(a.size(), b.size());
  if (max_length > 0 && int64_t(prompt.size() + longer) > max_length && max_prompt > 0 && int64_t(prompt.size()) > max_prompt)
    prompt.erase(prompt.begin(), prompt.end() - max_prompt);
  if (max_length > 0)
    for (auto* c : {&a, &b})
      if (int64_t(prompt.size() + c->size()) > max_length) c->resize(size_t(std::max<int64_t>(0, max_length - int64_t(prompt.size()))));
}

TokenizedRow join(const std::vector<int>& prompt, const std::vector<int>& completion) {
  TokenizedRow r;
  r.input_ids = prompt;
  r.input_ids.insert(r.input_ids.end(), completion.begin(), completion.end());
  r.labels.assign(prompt.size(), kIgnoreIndex);
  r.labels.insert(r.labels.end(), completion.begin(), completion.end());
  return r;
}

}  // namespace

PreferencePair preference_pair(const ordered_json& row, const Tokenizer* tok, const ChatTemplate* tmpl, int64_t max_length,
                               int64_t max_prompt_length, const std::string& where) {
  if (!row.is_object()) fail(where, "expected a JSON object");
  PreferencePair p;
  if (row.contains("chosen_input_ids")) {
    p.chosen.input_ids = ints(row, "chosen_input_ids", where);
    p.chosen.labels = ints(row, "chosen_labels", where);
    p.rejected.input_ids = ints(row, "rejected_input_ids", where);
    p.rejected.labels = ints(row, "rejected_labels", where);
    for (auto* r : {&p.chosen, &p.rejected})
      if (r->input_ids.size() != r->labels.size()) fail(where, "input_ids and labels differ in length");
    return p;
  }
  if (!row.contains("chosen") || !row.contains("rejected"))
    fail(where, "expected \"prompt\", \"chosen\" and \"rejected\" (or the tokenized *_input_ids / *_labels)");
  if (!tok || !tmpl) fail(where, "preference rows need a model with a tokenizer and a chat template");
  auto [chosen_context, chosen_answer] = split_answer(row["chosen"], "chosen", where);
  auto [rejected_context, rejected_answer] = split_answer(row["rejected"], "rejected", where);
  ordered_json prompt_messages = chosen_context;
  if (row.contains("prompt") && row["prompt"].is_array()) prompt_messages = row["prompt"];
  if (prompt_messages.empty()) {
    if (!row.contains("prompt") || !row["prompt"].is_string()) fail(where, "\"prompt\" must be a string or a message list");
    prompt_messages = ordered_json::array({{{"role", "user"}, {"content", row["prompt"].get<std::string>()}}});
  }
  std::string prompt_text;
  try {
    prompt_text = render_chat(*tmpl, *tok, {{"messages", prompt_messages}}, true);
  } catch (const Error& e) {
    fail(where, e.what());
  }
  std::vector<int> prompt = encode_chat_text(*tok, prompt_text);
  std::vector<int> chosen = tok->encode(chosen_answer, false), rejected = tok->encode(rejected_answer, false);
  if (tok->eos_id() >= 0) {
    chosen.push_back(tok->eos_id());
    rejected.push_back(tok->eos_id());
  }
  truncate(prompt, chosen, rejected, max_length, max_prompt_length);
  p.chosen = join(prompt, chosen);
  p.rejected = join(prompt, rejected);
  return p;
}

}  // namespace zephyr

// Chat templates: the Jinja "chat_template" of tokenizer_config.json, rendered as
// transformers' apply_chat_template renders it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/json_file.h"

namespace zephyr {

class Tokenizer;
namespace jinja { struct Node; }

// A template is code from the internet, so one render's work is bounded (jinja::WorkBudget): units
// are expressions evaluated, list/dict items and 64-byte string pieces built. Strings stay under
// 64 MiB, macro calls under 64 levels, and parsing refuses blocks or expressions nested deeper than
// 100 — each a clear error instead of a hang, runaway memory or a stack overflow.
constexpr int64_t kMaxTemplateWork = 10'000'000;

class ChatTemplate {
 public:
  // Parses the template; a syntax error throws Error "chat template: line L, column C: ...".
  explicit ChatTemplate(const std::string& source);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;

  // Renders with `variables` (a JSON object: messages, bos_token, add_generation_prompt, ...).
  // Runtime errors, raise_exception() included, throw Error with the line and column.
  std::string render(const ordered_json& variables) const;

 private:
  std::unique_ptr<std::vector<jinja::Node>> body_;
};

// The variables apply_chat_template passes: every key of `row` ("messages" required, a list of
// {"role", "content"}), bos_token/eos_token/pad_token/unk_token from the tokenizer, and
// add_generation_prompt.
std::string render_chat(const ChatTemplate& tmpl, const Tokenizer& tok, const ordered_json& row,
                        bool add_generation_prompt);

}  // namespace zephyr

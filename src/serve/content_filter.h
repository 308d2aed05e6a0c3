// The server's in-the-loop response filter (`zephyr serve --filter SPEC`): the user's message is
// checked before generation, the answer every N tokens and at the end. Zephyr-7B's model card
// lists "not deployed with in-the-loop filtering of responses" as a limitation; this closes it.
//
// SPEC is one of
//   exec:PATH     a program kept running: per check one JSON line on its stdin,
//                 {"role", "text", "conversation"}, and one JSON line back, {"flagged", "category"};
//   model:PATH    a local model (GGUF or directory) asked with a classification prompt, its answer
//                 constrained to {"flagged": bool, "category": string} (structured outputs);
//   http://HOST:PORT[/v1]  an OpenAI-compatible server asked the same way (response_format).
#pragma once
#include <memory>
#include <string>

#include "io/json_file.h"

namespace zephyr::serve {

struct FilterVerdict {
  bool flagged = false;
  std::string category;
  std::string error;  // the check itself failed (the filter crashed, timed out, answered nonsense)
};

class ContentFilter {
 public:
  virtual ~ContentFilter() = default;
  // role: "user" (a request) or "assistant" (an answer so far); conversation: the chat messages
  // (empty for /v1/completions). Thread-safe; never throws (errors come back in the verdict).
  virtual FilterVerdict check(const std::string& role, const std::string& text, const ordered_json& conversation) = 0;
};

struct FilterOptions {
  std::string spec;
  std::string prompt;      // the classification instructions for model:/http: ("" = the built-in ones)
  std::string model_name;  // http: the model to ask for
};

// Throws Error (field "filter") when SPEC is malformed or its program or model cannot be started.
std::unique_ptr<ContentFilter> make_content_filter(const FilterOptions& options);

// The built-in classification instructions for model: and http: filters.
const std::string& default_filter_prompt();

}  // namespace zephyr::serve

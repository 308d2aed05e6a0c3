// One completion: feed the prompt (reusing whatever prefix the state already holds), then sample
// token by token, streaming text as it becomes final, until EOS, a stop string or the limit.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "generate/sampler.h"
#include "generate/token_mask.h"
#include "model/inference.h"
#include "tokenizer/tokenizer.h"

namespace zephyr {

struct GenerationOptions {
  SamplingParams sampling;
  int64_t max_new_tokens = 256;
  std::vector<int64_t> eos_ids;          // any of them ends the answer (not part of the text)
  std::vector<std::string> stop_strings; // the text ends before the first one that appears
  // The answer must be a JSON value of this grammar (structured outputs); null: free text. It
  // ends as soon as the value is complete, and always completes within max_new_tokens when the
  // schema's shortest value fits in them.
  std::shared_ptr<const StructuredOutput> structured;
  // >= 0: record each generated token's log-probability and this many most likely alternatives.
  int top_logprobs = -1;
};

struct GenerationResult {
  std::string text;
  std::vector<int> tokens;      // generated ids, EOS included when it ended the answer
  std::vector<TokenLogprob> logprobs;  // with top_logprobs >= 0: per generated token, EOS not included
  std::string finish_reason;    // "stop" (EOS or stop string), "length", or "cancelled"
  int64_t prompt_tokens = 0;    // prompt length
  int64_t prompt_evaluated = 0; // prompt tokens actually run (the rest came from the cache)
  double prompt_seconds = 0, generation_seconds = 0;
};

// Streams text pieces to on_text; returning false from it cancels. The state keeps what it
// processed, so a chat turn only runs its new tokens.
class Generator {
 public:
  Generator(const Model& model, const Tokenizer& tokenizer) : model_(model), tok_(tokenizer), state_(model) {}

  GenerationResult generate(const std::vector<int>& prompt, const GenerationOptions& options,
                            const std::function<bool(std::string_view)>& on_text);
  void reset() { state_.truncate(0); }

 private:
  const Model& model_;
  const Tokenizer& tok_;
  InferenceState state_;
};

// Where the text to emit must stop so no stop string can still be completed by later text:
// returns {cut, found}; found means text[cut..] begins a full stop string.
std::pair<size_t, bool> stop_string_cut(std::string_view text, const std::vector<std::string>& stops);

// The text side of one completion: sampled ids in, final text out to on_text — never half a
// character, and held back while a stop string could still complete (the text ends before it).
class CompletionText {
 public:
  CompletionText(const Tokenizer& tok, const std::vector<std::string>& stops, std::function<bool(std::string_view)> on_text)
      : decoder_(tok), stops_(stops), on_text_(std::move(on_text)) {}
  // A sampled id that is not EOS; false once the completion is over (stop string, or on_text
  // returned false).
  bool push(int id);
  // The completion ended by EOS or length: emits what was held back.
  void finish();
  bool stopped() const { return stopped_; }
  bool cancelled() const { return cancelled_; }
  const std::string& text() const { return text_; }

 private:
  void emit(bool final);
  StreamDecoder decoder_;
  const std::vector<std::string>& stops_;
  std::function<bool(std::string_view)> on_text_;
  std::string text_, pending_;  // pending: decoded, not yet emitted (may start a stop string)
  bool stopped_ = false, cancelled_ = false;
};

}  // namespace zephyr

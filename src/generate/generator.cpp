#include "generate/generator.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "core/error.h"

namespace zephyr {

std::pair<size_t, bool> stop_string_cut(std::string_view text, const std::vector<std::string>& stops) {
  size_t first = std::string_view::npos;
  for (const auto& s : stops)
    if (!s.empty()) first = std::min(first, text.find(s));
  if (first != std::string_view::npos) return {first, true};
  // Hold back the longest tail that is the start of some stop string.
  size_t hold = 0;
  for (const auto& s : stops)
    for (size_t len = std::min(s.size() - 1, text.size()); len > hold; --len)
      if (text.substr(text.size() - len) == std::string_view(s).substr(0, len)) {
        hold = len;
        break;
      }
  return {text.size() - hold, false};
}

bool CompletionText::push(int id) {
  pending_ += decoder_.push(id);
  emit(false);
  return !stopped_ && !cancelled_;
}

void CompletionText::finish() {
  pending_ += decoder_.finish();
  emit(true);
}

void CompletionText::emit(bool final) {
  auto [cut, found] = stop_string_cut(pending_, stops_);
  if (final && !found) cut = pending_.size();
  if (cut > 0 && !on_text_(std::string_view(pending_).substr(0, cut))) cancelled_ = true;
  text_ += pending_.substr(0, cut);
  pending_.erase(0, cut);
  if (found) stopped_ = true;
}

GenerationResult Generator::generate(const std::vector<int>& prompt, const GenerationOptions& opt,
                                     const std::function<bool(std::string_view)>& on_text) {
  using clock = std::chrono::steady_clock;
  opt.sampling.validate();
  if (prompt.empty()) fail("", "the prompt is empty (no tokens to start from)");
  GenerationResult r;
  r.prompt_tokens = int64_t(prompt.size());
  if (int64_t(prompt.size()) + 1 > model_.config.max_position_embeddings)
    fail("", "the prompt has " + std::to_string(prompt.size()) + " tokens; the model's context is " +
                 std::to_string(model_.config.max_position_embeddings));

  const size_t common = state_.reuse_prefix(prompt);

  std::vector<float> logits(size_t(model_.config.vocab_size));
  const auto t0 = clock::now();
  forward(model_, prompt.data() + common, int64_t(prompt.size() - common), state_, logits.data());
  r.prompt_evaluated = int64_t(prompt.size() - common);
  const auto t1 = clock::now();
  r.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();

  Sampler sampler(opt.sampling);
  CompletionText out(tok_, opt.stop_strings, on_text);
  std::vector<int> history = prompt;
  const int64_t limit = std::min<int64_t>(opt.max_new_tokens, model_.config.max_position_embeddings - int64_t(prompt.size()));
  std::optional<JsonConstraint> constraint;
  if (opt.structured) opt.structured->check_fits(limit);
  if (opt.structured)
    constraint.emplace(opt.structured->grammar, token_vocabulary(tok_), opt.eos_ids, opt.structured->cache);
  bool eos = false, complete = false;
  for (int64_t step = 0; step < limit; ++step) {
    if (constraint && !constraint->apply(logits, limit - step)) break;  // no completion fits what is left
    TokenLogprob lp;
    const int next = sampler.sample(logits, history, opt.top_logprobs >= 0 ? &lp : nullptr, opt.top_logprobs);
    r.tokens.push_back(next);
    history.push_back(next);
    if (std::find(opt.eos_ids.begin(), opt.eos_ids.end(), int64_t(next)) != opt.eos_ids.end()) {
      eos = true;
      break;
    }
    if (opt.top_logprobs >= 0) r.logprobs.push_back(std::move(lp));
    if (constraint) constraint->accept(next);
    if (!out.push(next) || step + 1 == limit) break;
    if (constraint && constraint->finished()) {
      complete = true;
      break;
    }
    forward(model_, &next, 1, state_, logits.data());
  }
  if (!out.stopped() && !out.cancelled()) out.finish();  // ended by EOS or length: flush what is held back
  r.text = out.text();
  r.finish_reason = out.cancelled() ? "cancelled" : out.stopped() || eos || complete ? "stop" : "length";
  r.generation_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

}  // namespace zephyr

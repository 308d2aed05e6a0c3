#include "generate/engine.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include "core/error.h"
#include "core/parallel.h"

namespace zephyr {

using Clock = std::chrono::steady_clock;

struct Engine::Slot {
  explicit Slot(const Model& m) : state(m) {}
  InferenceState state;  // kept after a request ends: the next one may share its prefix
  uint64_t last_used = 0;
  // The request being served, when busy.
  std::shared_ptr<EngineRequest> req;
  size_t prompt_pos = 0;  // prompt tokens in the cache
  int next = -1;          // the sampled token to run next
  int64_t limit = 0;      // most tokens to generate
  std::optional<Sampler> sampler;
  std::optional<JsonConstraint> constraint;
  std::unique_ptr<CompletionText> text;
  std::vector<int> history;
  std::vector<float> logits;
  GenerationResult result;
  Clock::time_point t0, t1;
};

Engine::Engine(const Model& model, const Tokenizer& tok, EngineOptions o) : model_(model), tok_(tok), options_(o) {
  if (options_.slots < 1) fail_field("parallel", "must be at least 1");
  if (options_.queue < 0) fail_field("queue", "must be >= 0");
  const int64_t max_ctx = model.config.max_position_embeddings;
  if (options_.slot_context <= 0) options_.slot_context = std::min<int64_t>(max_ctx, 4096);
  if (options_.slot_context < 2 || options_.slot_context > max_ctx)
    fail_field("ctx", "must be in [2, " + std::to_string(max_ctx) + "] (the model's context), got " + std::to_string(options_.slot_context));
  if (options_.step_tokens < 1) options_.step_tokens = 256;
  for (int i = 0; i < options_.slots; ++i) slots_.push_back(std::make_unique<Slot>(model));
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(true); }

bool Engine::submit(std::shared_ptr<EngineRequest> r) {
  if (r->prompt.empty()) fail_field("prompt", "is empty (no tokens to start from)");
  const int64_t n = int64_t(r->prompt.size()), ctx = options_.slot_context;
  if (n >= ctx)
    fail_field("messages", "the prompt has " + std::to_string(n) + " tokens; a slot holds " + std::to_string(ctx) +
                               " (prompt and answer; zephyr serve --ctx)");
  if (n + r->options.max_new_tokens > ctx)
    fail_field("max_tokens", "the prompt (" + std::to_string(n) + " tokens) and max_tokens (" + std::to_string(r->options.max_new_tokens) +
                                 ") exceed a slot's context of " + std::to_string(ctx) + " tokens");
  r->options.sampling.validate();
  if (r->options.structured) r->options.structured->check_fits(r->options.max_new_tokens);
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return false;
  const int free_slots = options_.slots - busy_.load();
  if (int(queue_.size()) >= options_.queue + std::max(0, free_slots)) return false;
  queue_.push_back(std::move(r));
  wake_.notify_one();
  return true;
}

EngineStats Engine::stats() const {
  EngineStats s;
  s.slots = options_.slots;
  s.busy = busy_.load();
  {
    std::lock_guard<std::mutex> lock(mu_);
    s.queued = int(queue_.size());
  }
  s.cached_tokens = cached_tokens_.load();
  s.context_tokens = int64_t(options_.slots) * options_.slot_context;
  s.requests = requests_.load();
  s.prompt_tokens = prompt_tokens_.load();
  s.prompt_tokens_evaluated = prompt_evaluated_.load();
  s.generated_tokens = generated_.load();
  s.steps = steps_.load();
  return s;
}

void Engine::shutdown(bool cancel) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cancel_all_ = cancel_all_ || cancel;
  }
  wake_.notify_all();
  std::call_once(joined_, [this] {
    if (thread_.joinable()) thread_.join();
  });
}

void Engine::start(Slot& s, std::shared_ptr<EngineRequest> r) {
  const std::vector<int>& p = r->prompt;
  const size_t common = s.state.reuse_prefix(p, r->adapter);
  s.req = std::move(r);
  s.prompt_pos = common;
  s.next = -1;
  s.limit = std::min<int64_t>(s.req->options.max_new_tokens, options_.slot_context - int64_t(p.size()));
  s.sampler.emplace(s.req->options.sampling);
  s.constraint.reset();
  if (const auto& so = s.req->options.structured)
    s.constraint.emplace(so->grammar, token_vocabulary(tok_), s.req->options.eos_ids, so->cache);
  s.text = std::make_unique<CompletionText>(tok_, s.req->options.stop_strings, s.req->on_text);
  s.history = p;
  s.logits.resize(size_t(model_.config.vocab_size));
  s.result = GenerationResult();
  s.result.prompt_tokens = int64_t(p.size());
  s.result.prompt_evaluated = int64_t(p.size() - common);
  s.t0 = Clock::now();
  requests_ += 1;
  prompt_tokens_ += p.size();
  prompt_evaluated_ += p.size() - common;
  busy_ += 1;
}

void Engine::finish(Slot& s, const char* reason) {
  s.result.text = s.text->text();
  s.result.finish_reason = reason;
  const auto now = Clock::now();
  if (s.result.tokens.empty()) s.t1 = now;
  s.result.prompt_seconds = std::chrono::duration<double>(s.t1 - s.t0).count();
  s.result.generation_seconds = std::chrono::duration<double>(now - s.t1).count();
  std::shared_ptr<EngineRequest> r = std::move(s.req);
  s.text.reset();
  s.sampler.reset();
  s.constraint.reset();
  busy_ -= 1;
  if (r->on_done) r->on_done(s.result);
}

void Engine::loop() {
  uint64_t tick = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || busy_.load() > 0; });
      if (cancel_all_) {
        for (auto& r : queue_) r->cancelled = true;
        for (auto& s : slots_)
          if (s->req) s->req->cancelled = true;
      }
      // Admit waiting requests into free slots: the slot with the longest cached prefix of the
      // prompt, else the one unused the longest.
      while (!queue_.empty()) {
        Slot* best = nullptr;
        size_t best_common = 0;
        for (auto& s : slots_) {
          if (s->req) continue;
          const size_t c = s->state.shared_prefix(queue_.front()->prompt, queue_.front()->adapter);
          if (!best || c > best_common || (c == best_common && s->last_used < best->last_used)) best = s.get(), best_common = c;
        }
        if (!best) break;
        std::shared_ptr<EngineRequest> r = std::move(queue_.front());
        queue_.pop_front();
        start(*best, std::move(r));
        best->last_used = ++tick;
      }
      if (busy_.load() == 0 && stopping_) return;
    }
    for (auto& s : slots_)
      if (s->req && s->req->cancelled.load()) finish(*s, "cancelled");
    if (busy_.load() > 0) step();
  }
}

void Engine::step() {
  std::vector<BatchSequence> batch;
  std::vector<Slot*> owners;
  int64_t budget = options_.step_tokens;
  for (auto& sp : slots_) {
    Slot& s = *sp;
    if (!s.req) continue;
    const std::vector<int>& p = s.req->prompt;
    if (s.prompt_pos < p.size()) {  // still reading the prompt: a share of this step's prompt budget
      const int64_t n = std::min<int64_t>(int64_t(p.size() - s.prompt_pos), budget);
      if (n <= 0) continue;
      budget -= n;
      const bool last = s.prompt_pos + size_t(n) == p.size();
      batch.push_back({&s.state, p.data() + s.prompt_pos, n, last ? s.logits.data() : nullptr, s.req->adapter});
    } else {
      batch.push_back({&s.state, &s.next, 1, s.logits.data(), s.req->adapter});
    }
    owners.push_back(&s);
  }
  if (batch.empty()) return;
  try {
    forward_batch(model_, batch, scratch_);
  } catch (const Error& e) {  // never expected (ids come from the tokenizer); end the requests, keep serving
    std::fprintf(stderr, "zephyr: engine: %s\n", e.what());
    for (Slot* s : owners) {
      s->state.truncate(0);
      finish(*s, "error");
    }
    return;
  }
  steps_ += 1;
  int64_t cached = 0;
  // The rows that draw a token this step. Constraints mask first, here: a grammar's mask cache is
  // shared by its generations on this thread.
  struct Draw {
    Slot* slot;
    TokenLogprob lp;
    int next = 0;
    std::string error;
  };
  std::vector<Draw> draws;
  for (size_t i = 0; i < batch.size(); ++i) {
    Slot& s = *owners[i];
    if (s.prompt_pos < s.req->prompt.size()) {
      s.prompt_pos += size_t(batch[i].n);
      if (!batch[i].logits) continue;
      s.t1 = Clock::now();
    }
    if (s.req->cancelled.load()) {
      finish(s, "cancelled");
      continue;
    }
    if (s.constraint && !s.constraint->apply(s.logits, s.limit - int64_t(s.result.tokens.size()))) {
      s.text->finish();  // no completion of the value fits the tokens left
      finish(s, "length");
      continue;
    }
    draws.push_back({&s, {}, 0, {}});
  }
  // The draws across threads: each is a few passes over the vocabulary (~6% of a step serving 8
  // SmolLM2 streams, on this thread alone), and each slot's sampler, logits and history are its own.
  parallel_for(draws.size(), 1, [&](size_t a, size_t e) {
    for (size_t k = a; k < e; ++k) {
      Draw& d = draws[k];
      Slot& s = *d.slot;
      const int top = s.req->options.top_logprobs;
      try {
        d.next = s.sampler->sample(s.logits, s.history, top >= 0 ? &d.lp : nullptr, top);
      } catch (const Error& err) {  // the model's numbers, not the request: end it, keep serving
        d.error = err.what();
      }
    }
  });
  for (Draw& d : draws) {
    Slot& s = *d.slot;
    if (!d.error.empty()) {
      std::fprintf(stderr, "zephyr: engine: %s\n", d.error.c_str());
      s.state.truncate(0);
      finish(s, "error");
      continue;
    }
    const int top = s.req->options.top_logprobs;
    const int next = d.next;
    TokenLogprob& lp = d.lp;
    s.result.tokens.push_back(next);
    s.history.push_back(next);
    generated_ += 1;
    s.req->generated += 1;
    const auto& eos = s.req->options.eos_ids;
    const bool is_eos = std::find(eos.begin(), eos.end(), int64_t(next)) != eos.end();
    if (top >= 0 && !is_eos) {
      if (s.req->on_logprob) s.req->on_logprob(lp);
      s.result.logprobs.push_back(std::move(lp));
    }
    if (s.constraint) s.constraint->accept(next);
    if (is_eos) {
      s.text->finish();
      finish(s, "stop");
    } else if (!s.text->push(next)) {
      finish(s, s.text->cancelled() ? "cancelled" : "stop");
    } else if (s.constraint && s.constraint->finished()) {
      s.text->finish();
      finish(s, "stop");
    } else if (int64_t(s.result.tokens.size()) >= s.limit) {
      s.text->finish();
      finish(s, "length");
    } else {
      s.next = next;
    }
  }
  for (auto& s : slots_) cached += s->state.size();
  cached_tokens_ = cached;
}

}  // namespace zephyr

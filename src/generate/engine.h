// The batched engine: many completions decoded together, one forward_batch per step, so the
// weights are read once per step for every sequence (decode is memory-bound; this is why
// servers batch). Continuous batching: requests join and leave between steps. Each slot keeps
// its KV cache after a request ends, and the next request reuses the longest cached prefix (the
// next turn of a conversation). Batch-invariant: a request's tokens are the same bits whatever
// else runs beside it (see forward_batch), so a seed gives the same answer alone or under load.
// A request may run through a LoRA adapter kept beside the base (ServedAdapter): several adapters
// share one loaded base and one batch; a slot's cache serves only a request with its adapter.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "generate/generator.h"
#include "model/inference.h"
#include "tokenizer/tokenizer.h"

namespace zephyr {

struct EngineOptions {
  int slots = 4;              // sequences decoded together
  int64_t slot_context = 0;   // tokens per slot (prompt and answer); 0: min(model context, 4096)
  int queue = 64;             // requests that may wait for a slot; beyond that submit() refuses
  int64_t step_tokens = 256;  // prompt tokens per step, shared by the sequences still reading their prompt
};

// One completion. The callbacks run on the engine's thread: keep them short (hand off to a queue).
struct EngineRequest {
  std::vector<int> prompt;
  GenerationOptions options;
  const ServedAdapter* adapter = nullptr;                 // a LoRA adapter beside the base (must outlive the engine); null: the base
  std::function<bool(std::string_view)> on_text;          // final text pieces; false cancels
  std::function<void(const TokenLogprob&)> on_logprob;    // with options.top_logprobs >= 0: each token (not EOS), before its text
  std::function<void(const GenerationResult&)> on_done;   // once, at the end (finish_reason set)
  std::atomic<bool> cancelled{false};                     // any thread may set it (client gone)
  std::atomic<int64_t> generated{0};                      // tokens sampled so far (EOS included)
};

struct EngineStats {
  int slots = 0, busy = 0, queued = 0;
  int64_t cached_tokens = 0, context_tokens = 0;  // KV cache in use / slots x slot context
  uint64_t requests = 0, prompt_tokens = 0, prompt_tokens_evaluated = 0, generated_tokens = 0, steps = 0;
};

class Engine {
 public:
  Engine(const Model& model, const Tokenizer& tok, EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; false when the queue is full or the engine is shutting down. An Error
  // (field "messages"/"prompt" or "max_tokens") when the prompt does not fit a slot's context.
  bool submit(std::shared_ptr<EngineRequest> request);
  EngineStats stats() const;
  int64_t slot_context() const { return options_.slot_context; }
  // Takes no new requests; with cancel, ends those in flight ("cancelled"), else lets them
  // finish. Returns when the engine's thread has ended. A second call (say, from a second
  // signal) may escalate to cancel while the first waits.
  void shutdown(bool cancel);

 private:
  struct Slot;
  void loop();
  void start(Slot& slot, std::shared_ptr<EngineRequest> request);
  void finish(Slot& slot, const char* reason);
  void step();

  const Model& model_;
  const Tokenizer& tok_;
  EngineOptions options_;
  std::vector<std::unique_ptr<Slot>> slots_;
  ForwardScratch scratch_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<EngineRequest>> queue_;
  bool stopping_ = false, cancel_all_ = false;
  std::atomic<uint64_t> requests_{0}, prompt_tokens_{0}, prompt_evaluated_{0}, generated_{0}, steps_{0};
  std::atomic<int> busy_{0};
  std::atomic<int64_t> cached_tokens_{0};
  std::once_flag joined_;
  std::thread thread_;
};

}  // namespace zephyr

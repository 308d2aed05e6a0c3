// zephyr serve: an OpenAI-compatible HTTP server (cpp-httplib) on the batched engine:
// /v1/chat/completions and /v1/completions (JSON or SSE streams), /v1/models, /health,
// /metrics (Prometheus text) and a web chat page at /. Errors are OpenAI-style JSON. With LoRA
// adapters beside the base, the request's `model` picks the base or one of them.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "generate/engine.h"
#include "serve/content_filter.h"
#include "model/served_adapter.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace zephyr::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0: any free port (the one taken is passed to on_listening)
  std::string api_key;             // when set, /v1/ requests need "Authorization: Bearer KEY"
  std::string model_name;          // the id /v1/models lists and requests may name
  // LoRA adapters served beside the base: a request naming one (`model`) runs through it.
  std::vector<std::shared_ptr<const ServedAdapter>> adapters;
  EngineOptions engine;
  size_t max_body_bytes = 8 << 20; // larger bodies get 413
  FilterOptions filter;            // spec "": no filter
  int filter_every = 32;           // check the answer every this many tokens (and at its end)
  bool filter_fail_closed = false; // a failing check counts as flagged (else as clean)
};

class Server {
 public:
  Server(const Model& model, const Tokenizer& tok, ServerOptions options);
  ~Server();
  // Serves until stop(); on_listening(port) once the socket is bound. An Error if it cannot bind.
  void run(const std::function<void(int)>& on_listening);
  // Thread-safe, for a signal watcher: new requests get 503, those in flight finish (cancel:
  // end now), then run() returns. A second call may escalate to cancel.
  void stop(bool cancel);
  // Tokens per slot, prompt and answer (ServerOptions::engine.slot_context, or its default).
  int64_t slot_context() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zephyr::serve

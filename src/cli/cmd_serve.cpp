// zephyr serve: the OpenAI-compatible server. SIGINT/SIGTERM: stop taking requests, finish those
// in flight, exit; a second signal cancels them.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <optional>
#include <thread>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/model_dir.h"
#include "serve/server.h"

namespace zephyr::cli {

namespace {

std::atomic<int> g_signals{0};
void on_signal(int) { g_signals.fetch_add(1); }

struct ServeArgs {
  ModelFlags model;
  std::string filter_prompt;
  serve::ServerOptions server;
  ThreadsFlag threads;
};

}  // namespace

Run add_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve",
                                 "Serve a model over the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models) with "
                                 "a web chat page at /, /health and /metrics");
  auto a = std::make_shared<ServeArgs>();
  a->model.add(cmd, "model directory (Hugging Face layout) or GGUF file", true);
  cmd->add_option("--host", a->server.host, "address to listen on (default 127.0.0.1: this machine only)");
  cmd->add_option("--port", a->server.port, "port (default 8080; 0 picks a free one)")->check(CLI::Range(0, 65535));
  cmd->add_option("--parallel", a->server.engine.slots, "sequences decoded together (default 4)")->check(CLI::Range(1, 256));
  cmd->add_option("--ctx", a->server.engine.slot_context,
                  "tokens per sequence, prompt and answer (default: the model's context, at most 4096)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--queue", a->server.engine.queue, "requests that may wait for a free slot; more get 503 (default 64)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--api-key", a->server.api_key, "require Authorization: Bearer KEY on /v1/ requests");
  cmd->add_option("--model-name", a->server.model_name, "the model id clients see and send (default: the file or directory name)");
  cmd->add_option("--filter", a->server.filter.spec,
                  "check requests and answers with a content filter: exec:PATH (a program: a JSON line in, "
                  "{\"flagged\", \"category\"} out), model:PATH (a local model) or http://HOST:PORT/v1 (an OpenAI-compatible server)");
  cmd->add_option("--filter-every", a->server.filter_every, "check the answer every N tokens while generating, and at its end (default 32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--filter-fail", a->server.filter_fail_closed,
                  "when a check fails (the filter crashed, timed out or answered nonsense): open lets the text through, "
                  "closed treats it as flagged (default open)")
      ->transform(CLI::CheckedTransformer(std::map<std::string, bool>{{"open", false}, {"closed", true}}));
  cmd->add_option("--filter-prompt", a->filter_prompt, "model:/http: filters: a file with the classification instructions "
                                                       "(default: built in; the text to judge comes as the user message)");
  cmd->add_option("--filter-model", a->server.filter.model_name, "http: filters: the model name to ask for (default \"default\")");
  a->threads.add(cmd);
  return [a] {
    a->threads.apply();
    if (!a->filter_prompt.empty()) {
      if (a->server.filter.spec.empty()) fail("--filter-prompt", "needs --filter");
      a->server.filter.prompt = read_file(a->filter_prompt);
    }
    const Model model = a->model.load();
    a->server.adapters = a->model.served_adapters(model);
    const Tokenizer tok = model_tokenizer(model);
    // The model's own adapter names the model clients see: it is what makes this model this one.
    if (a->server.model_name.empty()) a->server.model_name = model.adapter ? model.adapter->name : path_name(a->model.path());
    for (const auto& ad : a->server.adapters)
      if (ad->name == a->server.model_name)
        fail("--lora", "the adapter " + ad->dir.string() + " would be named '" + ad->name +
                           "', the base model's name; name it with --lora NAME=DIR or the base with --model-name");
    std::optional<serve::Server> built;
    try {
      built.emplace(model, tok, a->server);
    } catch (const Error& e) {
      if (e.field().rfind("filter", 0) != 0) throw;
      fail("--" + e.field(), e.reason());
    }
    serve::Server& server = *built;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::atomic<bool> done{false};
    std::thread watcher([&] {
      int handled = 0;
      while (!done.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        const int n = g_signals.load();
        if (n == handled) continue;
        handled = n;
        std::fprintf(stderr, n == 1 ? "zephyr serve: stopping: finishing the requests in flight (again to cancel them)\n"
                                    : "zephyr serve: cancelling the requests in flight\n");
        server.stop(n > 1);
      }
    });
    try {
      server.run([&](int port) {
        std::string names = "\"" + a->server.model_name + "\"";
        for (const auto& ad : a->server.adapters) names += ", \"" + ad->name + "\"";
        std::fprintf(stderr, "zephyr serve: %s as %s on http://%s:%d (%d slots of %lld tokens)\n", a->model.path().c_str(), names.c_str(),
                     a->server.host.c_str(), port, a->server.engine.slots, (long long)server.slot_context());
      });
    } catch (...) {
      done = true;
      watcher.join();
      throw;
    }
    done = true;
    watcher.join();
    std::fprintf(stderr, "zephyr serve: stopped\n");
    return 0;
  };
}

}  // namespace zephyr::cli

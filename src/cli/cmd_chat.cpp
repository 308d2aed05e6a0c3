// zephyr chat: an interactive multi-turn conversation on the terminal. The history goes through
// the chat template each turn; the KV cache keeps the shared prefix, so only new text is run.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "generate/generator.h"
#include "tokenizer/chat_template.h"

namespace zephyr::cli {

namespace {

std::atomic<bool> g_answering{false}, g_interrupted{false};

// Ctrl-C while an answer streams stops that answer; at the prompt it ends the program as usual.
void on_sigint(int) {
  if (g_answering.load()) {
    g_interrupted.store(true);
  } else {
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
  }
}

struct ChatArgs {
  std::string model, system;
  int64_t max_new_tokens = 1024;
  SamplingFlags sampling;
  ThreadsFlag threads;
};

}  // namespace

Run add_chat(CLI::App& app) {
  auto* cmd = app.add_subcommand("chat",
                                 "Chat with a model on the terminal: type a message, Enter sends it; /reset starts over, "
                                 "/exit (or Ctrl-D) quits, Ctrl-C stops an answer");
  auto a = std::make_shared<ChatArgs>();
  cmd->add_option("-m,--model", a->model, "model directory (Hugging Face layout) or GGUF file")->required();
  cmd->add_option("--system", a->system, "system message that starts every conversation");
  cmd->add_option("-n,--max-new-tokens", a->max_new_tokens, "most tokens per answer (default 1024)")->check(CLI::PositiveNumber);
  a->sampling.add(cmd);
  a->threads.add(cmd);
  return [a] {
    a->threads.apply();
    const Model model = Model::load(a->model);
    const Tokenizer tok = load_model_tokenizer(model);
    if (tok.chat_template().empty()) fail(a->model, "tokenizer_config.json has no chat_template; chat needs one");
    const ChatTemplate tmpl(tok.chat_template());
    GenerationOptions opt;
    opt.sampling = a->sampling.resolve(model);
    opt.max_new_tokens = a->max_new_tokens;
    opt.eos_ids = model.eos_token_ids();
    Generator gen(model, tok);
    const bool tty = isatty(STDIN_FILENO);
    ordered_json messages = ordered_json::array();
    auto reset = [&] {
      messages = ordered_json::array();
      if (!a->system.empty()) messages.push_back({{"role", "system"}, {"content", a->system}});
      gen.reset();
    };
    reset();
    std::signal(SIGINT, on_sigint);
    if (tty) std::fprintf(stderr, "zephyr chat — %s. /reset starts over, /exit quits, Ctrl-C stops an answer.\n", a->model.c_str());
    std::string line;
    while (true) {
      if (tty) std::fputs("> ", stdout), std::fflush(stdout);
      if (!std::getline(std::cin, line)) break;
      if (line == "/exit" || line == "/quit") break;
      if (line == "/reset") {
        reset();
        if (tty) std::fputs("(conversation cleared)\n", stdout);
        continue;
      }
      if (line.empty()) continue;
      messages.push_back({{"role", "user"}, {"content", line}});
      try {
        const std::vector<int> prompt = tok.encode(render_chat(tmpl, tok, {{"messages", messages}}, true), false);
        g_interrupted = false;
        g_answering = true;
        const GenerationResult r = gen.generate(prompt, opt, [](std::string_view piece) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
          return !g_interrupted.load();
        });
        g_answering = false;
        std::fputs(r.finish_reason == "cancelled" ? " [stopped]\n" : "\n", stdout);
        messages.push_back({{"role", "assistant"}, {"content", r.text}});
      } catch (const Error& e) {
        g_answering = false;
        messages.erase(messages.size() - 1);
        std::fflush(stdout);
        std::fprintf(stderr, "zephyr: error: %s\n", e.what());
      }
    }
    return 0;
  };
}

}  // namespace zephyr::cli

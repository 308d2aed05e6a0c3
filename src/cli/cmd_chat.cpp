// zephyr chat: an interactive multi-turn conversation on the terminal. The history goes through
// the chat template each turn; the KV cache keeps the shared prefix, so only new text is run.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/line_reader.h"
#include "cli/options.h"
#include "core/error.h"
#include "generate/generator.h"
#include "tokenizer/conversation.h"

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
  ModelFlags model;
  std::string system;
  int64_t max_new_tokens = 1024;
  SamplingFlags sampling;
  ThreadsFlag threads;
};

const char* kHelp =
    "Enter sends a message; a line ending in \\ continues it (pasted lines arrive as one message).\n"
    "  /system TEXT  set the system message (/system alone removes it)\n"
    "  /save FILE    write the conversation as {\"messages\": [...]} JSON\n"
    "  /load FILE    continue a conversation saved with /save\n"
    "  /reset        start over     /help  this text     /exit (or Ctrl-D)  quit\n"
    "Ctrl-C stops an answer.\n";

// The conversation: an optional system message first, then the turns.
struct Conversation {
  ordered_json messages = ordered_json::array();

  void set_system(const std::string& text) {
    const bool has = !messages.empty() && messages[0].value("role", "") == "system";
    if (has) messages.erase(messages.begin());
    if (!text.empty()) messages.insert(messages.begin(), ordered_json{{"role", "system"}, {"content", text}});
  }
  ordered_json row() const { return {{"messages", messages}}; }
};

// A file /save wrote (or any {"messages": [...]} document), checked against the template.
ordered_json load_conversation(const std::string& path, const ChatTemplate& tmpl, const Tokenizer& tok) {
  const json doc = read_json_file(path);
  if (!doc.is_object() || !doc.contains("messages") || !doc["messages"].is_array())
    fail(path, "expected {\"messages\": [{\"role\": ..., \"content\": ...}, ...]}");
  const ordered_json row = ordered_json::parse(doc.dump());
  try {
    render_chat(tmpl, tok, row, true);
  } catch (const Error& e) {
    fail(path, e.what());
  }
  for (const auto& m : row["messages"])
    if (!m.contains("content") || !m["content"].is_string()) fail(path, "every message needs a \"content\" string");
  return row["messages"];
}

}  // namespace

Run add_chat(CLI::App& app) {
  auto* cmd = app.add_subcommand("chat",
                                 "Chat with a model on the terminal: Enter sends a message; /help lists /system, /save, "
                                 "/load, /reset and /exit; Ctrl-C stops an answer");
  auto a = std::make_shared<ChatArgs>();
  a->model.add(cmd);
  cmd->add_option("--system", a->system, "system message that starts every conversation");
  cmd->add_option("-n,--max-new-tokens", a->max_new_tokens, "most tokens per answer (default 1024)")->check(CLI::PositiveNumber);
  a->sampling.add(cmd);
  a->threads.add(cmd);
  return [a] {
    a->threads.apply();
    const Model model = a->model.load();
    const Tokenizer tok = model_tokenizer(model);
    const ChatTemplate tmpl = chat_template_of(tok, a->model.path());
    GenerationOptions opt;
    opt.sampling = a->sampling.resolve(model);
    opt.max_new_tokens = a->max_new_tokens;
    opt.eos_ids = model.eos_token_ids();
    Generator gen(model, tok);
    LineReader input;
    const bool tty = input.interactive();
    Conversation chat;
    std::string system = a->system;
    chat.set_system(system);
    std::signal(SIGINT, on_sigint);
    if (tty) std::fprintf(stderr, "zephyr chat — %s. /help lists the commands, /exit quits, Ctrl-C stops an answer.\n", a->model.path().c_str());
    auto say = [&](const std::string& s) {
      if (tty) std::fputs((s + "\n").c_str(), stdout);
    };
    while (std::optional<std::string> line = input.read("> ")) {
      try {
        if (*line == "/exit" || *line == "/quit") break;
        if (*line == "/help") {
          std::fputs(kHelp, stdout);
          continue;
        }
        if (*line == "/reset") {
          chat = Conversation();
          chat.set_system(system);
          gen.reset();
          say("(conversation cleared)");
          continue;
        }
        if (*line == "/system" || line->starts_with("/system ")) {
          system = line->size() > 8 ? line->substr(8) : "";
          chat.set_system(system);
          say(system.empty() ? "(system message removed)" : "(system message set)");
          continue;
        }
        if (line->starts_with("/save ")) {
          write_file_atomic(line->substr(6), chat.row().dump(2) + "\n");
          say("(saved " + std::to_string(chat.messages.size()) + " messages to " + line->substr(6) + ")");
          continue;
        }
        if (line->starts_with("/load ")) {
          chat.messages = load_conversation(line->substr(6), tmpl, tok);
          say("(loaded " + std::to_string(chat.messages.size()) + " messages from " + line->substr(6) + ")");
          continue;
        }
        if (line->starts_with("/") && line->find_first_of(" \n") == std::string::npos)
          fail(*line, "unknown command (/help lists them)");
        if (line->empty()) continue;
        chat.messages.push_back({{"role", "user"}, {"content", *line}});
        const std::vector<int> prompt = chat_ids(tmpl, tok, chat.row(), true);
        g_interrupted = false;
        g_answering = true;
        const GenerationResult r = gen.generate(prompt, opt, [](std::string_view piece) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
          return !g_interrupted.load();
        });
        g_answering = false;
        std::fputs(r.finish_reason == "cancelled" ? " [stopped]\n" : "\n", stdout);
        chat.messages.push_back({{"role", "assistant"}, {"content", r.text}});
      } catch (const Error& e) {
        g_answering = false;
        if (!chat.messages.empty() && chat.messages.back().value("role", "") == "user" && chat.messages.back()["content"] == *line)
          chat.messages.erase(chat.messages.size() - 1);
        std::fflush(stdout);
        std::fprintf(stderr, "zephyr: error: %s\n", e.what());
      }
    }
    std::fflush(stdout);
    return 0;
  };
}

}  // namespace zephyr::cli

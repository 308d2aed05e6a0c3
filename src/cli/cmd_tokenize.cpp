// zephyr tokenize / detokenize: JSONL in on stdin, JSONL out on stdout.
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/json_file.h"
#include "tokenizer/conversation.h"

namespace zephyr::cli {

namespace {

struct TokenizeArgs {
  std::string model;
  bool no_special = false, chat = false, generation_prompt = false;
};

}  // namespace

Run add_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize",
                                 "Text to token ids: reads {\"text\": ...} lines (or {\"messages\": [...]} with --chat) on "
                                 "stdin, writes {\"ids\": [...]} lines");
  auto a = std::make_shared<TokenizeArgs>();
  cmd->add_option("-m,--model", a->model, "model directory, GGUF file or tokenizer.json")->required();
  cmd->add_flag("--no-special", a->no_special, "add no BOS/EOS (by default they are added as tokenizer_config.json says)");
  cmd->add_flag("--chat", a->chat,
                "read conversations and print the ids the model sees: the chat template's text with BOS as training "
                "and generation add it");
  cmd->add_flag("--add-generation-prompt", a->generation_prompt,
                "with --chat: end with the assistant's turn opening, as generation does (training does not)");
  return [a] {
    if (a->generation_prompt && !a->chat) fail("--add-generation-prompt", "needs --chat");
    if (a->no_special && a->chat) fail("--no-special", "cannot be used with --chat (the chat rule decides BOS)");
    const Tokenizer tok = load_tokenizer(a->model);
    std::optional<ChatTemplate> tmpl;
    if (a->chat) tmpl.emplace(chat_template_of(tok, a->model));
    std::ios::sync_with_stdio(false);
    for_each_jsonl(std::cin, "stdin", [&](const ordered_json& row, size_t) {
      std::vector<int> ids;
      if (tmpl) {
        ids = chat_ids(*tmpl, tok, row, a->generation_prompt);
      } else {
        if (!row.is_object() || !row.contains("text") || !row["text"].is_string())
          fail("", "expected an object {\"text\": string}");
        ids = tok.encode(row["text"].get<std::string>(), !a->no_special);
      }
      std::cout << to_json_line(ordered_json{{"ids", ids}}) << '\n';
    });
    return 0;
  };
}

Run add_detokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("detokenize", "Token ids to text: reads {\"ids\": [...]} lines on stdin, writes {\"text\": ...} lines");
  auto model = std::make_shared<std::string>();
  auto keep_special = std::make_shared<bool>(false);
  cmd->add_option("-m,--model", *model, "model directory, GGUF file or tokenizer.json")->required();
  cmd->add_flag("--keep-special", *keep_special, "keep special tokens in the text (skipped by default)");
  return [=] {
    const Tokenizer tok = load_tokenizer(*model);
    std::ios::sync_with_stdio(false);
    for_each_jsonl(std::cin, "stdin", [&](const ordered_json& row, size_t) {
      if (!row.is_object() || !row.contains("ids") || !row["ids"].is_array())
        fail("", "expected an object {\"ids\": [int, ...]}");
      std::vector<int> ids;
      for (const auto& v : row["ids"]) {
        const std::optional<int> id = json_int(v);
        if (!id) fail("", "ids must be 32-bit integers, got " + v.dump().substr(0, 40));
        ids.push_back(*id);
      }
      std::cout << to_json_line(ordered_json{{"text", tok.decode(ids, !*keep_special)}}) << '\n';
    });
    return 0;
  };
}

}  // namespace zephyr::cli

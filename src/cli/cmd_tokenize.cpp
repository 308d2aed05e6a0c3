// zephyr tokenize / detokenize: JSONL in on stdin, JSONL out on stdout.
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/json_file.h"
#include "tokenizer/tokenizer.h"

namespace zephyr::cli {

Run add_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Text to token ids: reads {\"text\": ...} lines on stdin, writes {\"ids\": [...]} lines");
  auto model = std::make_shared<std::string>();
  auto no_special = std::make_shared<bool>(false);
  cmd->add_option("-m,--model", *model, "model directory, GGUF file or tokenizer.json")->required();
  cmd->add_flag("--no-special", *no_special, "add no BOS/EOS (by default they are added as tokenizer_config.json says)");
  return [=] {
    const Tokenizer tok = load_tokenizer(*model);
    std::ios::sync_with_stdio(false);
    for_each_jsonl(std::cin, "stdin", [&](const ordered_json& row, size_t) {
      if (!row.is_object() || !row.contains("text") || !row["text"].is_string())
        fail("", "expected an object {\"text\": string}");
      std::cout << to_json_line(ordered_json{{"ids", tok.encode(row["text"].get<std::string>(), !*no_special)}}) << '\n';
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
        if (!v.is_number_integer()) fail("", "ids must be integers");
        ids.push_back(v.get<int>());
      }
      std::cout << to_json_line(ordered_json{{"text", tok.decode(ids, !*keep_special)}}) << '\n';
    });
    return 0;
  };
}

}  // namespace zephyr::cli

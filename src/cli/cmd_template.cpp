// zephyr template: renders {"messages": [...]} lines through the model's chat template.
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/json_file.h"
#include "tokenizer/conversation.h"

namespace zephyr::cli {

Run add_template(CLI::App& app) {
  auto* cmd = app.add_subcommand("template",
                                 "Render chats with the model's chat template: reads {\"messages\": [...]} lines on stdin, "
                                 "writes the rendered text exactly (other keys of the line become template variables)");
  auto model = std::make_shared<std::string>();
  auto gen = std::make_shared<bool>(false);
  cmd->add_option("-m,--model", *model, "model directory, GGUF file or tokenizer.json (with tokenizer_config.json beside it)")->required();
  cmd->add_flag("--add-generation-prompt", *gen, "end with the prompt that starts the assistant's answer");
  return [=] {
    const Tokenizer tok = load_tokenizer(*model);
    const ChatTemplate tmpl = chat_template_of(tok, *model);
    std::ios::sync_with_stdio(false);
    for_each_jsonl(std::cin, "stdin", [&](const ordered_json& row, size_t) {
      std::cout << render_chat(tmpl, tok, row, *gen) << std::flush;
    });
    return 0;
  };
}

}  // namespace zephyr::cli

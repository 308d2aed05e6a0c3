#include "tokenizer/conversation.h"

#include "core/error.h"

namespace zephyr {

std::vector<int> encode_chat_text(const Tokenizer& tok, std::string_view rendered) {
  const bool has_bos = !tok.bos_token().empty() && rendered.starts_with(tok.bos_token());
  std::vector<int> ids = has_bos ? std::vector<int>() : tok.leading_specials();
  const std::vector<int> body = tok.encode(rendered, false);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::vector<int> chat_ids(const ChatTemplate& tmpl, const Tokenizer& tok, const ordered_json& row,
                          bool add_generation_prompt) {
  return encode_chat_text(tok, render_chat(tmpl, tok, row, add_generation_prompt));
}

ChatTemplate chat_template_of(const Tokenizer& tok, const std::string& model) {
  if (tok.chat_template().empty())
    fail(model, "has no chat template (tokenizer_config.json \"chat_template\", chat_template.jinja, or the GGUF's "
                "tokenizer.chat_template)");
  return ChatTemplate(tok.chat_template());
}

}  // namespace zephyr

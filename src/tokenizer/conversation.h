// The one rule from a conversation to the token ids a model sees, for training and generation
// alike: the model card's pipeline — render with the chat template, then tokenize as
// tokenizer(text) does, so the post-processor's leading specials (BOS when add_bos_token) come
// first — except when the rendered text already begins with BOS (Llama-3-style templates write
// it themselves), so BOS is never missing and never doubled. Trailing specials (EOS when
// add_eos_token) are not added: the template ends each turn itself, and an EOS after the
// generation prompt would end the answer before it starts. With this rule the ids a training
// row starts with are the ids generation feeds for the same conversation's prompt.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "io/json_file.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace zephyr {

// Rendered chat text -> ids by the rule above.
std::vector<int> encode_chat_text(const Tokenizer& tok, std::string_view rendered);

// {"messages": [...], ...} -> ids: render_chat, then encode_chat_text.
std::vector<int> chat_ids(const ChatTemplate& tmpl, const Tokenizer& tok, const ordered_json& row,
                          bool add_generation_prompt);

// The tokenizer's chat template, parsed; `model` names the model in the error when it has none.
ChatTemplate chat_template_of(const Tokenizer& tok, const std::string& model);

}  // namespace zephyr

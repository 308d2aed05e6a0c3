// Preference pairs as token rows: the prompt rendered through the chat template with the
// generation prompt, each completion the assistant's answer plus EOS, labels only on the
// completion. Rows in the ultrafeedback_binarized shape ({"prompt", "chosen": [messages],
// "rejected": [messages]}), with plain-string variants, or already tokenized
// ({"chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels"}).
#pragma once
#include <string>

#include "train/sft_data.h"

namespace zephyr {

struct PreferencePair {
  TokenizedRow chosen, rejected;  // prompt + completion; labels -100 on the prompt
};

// Truncates as TRL's DPO does: when prompt + the longer completion exceed max_length, the prompt
// keeps its last max_prompt_length tokens, then completions are cut to fit max_length.
PreferencePair preference_pair(const ordered_json& row, const Tokenizer* tok, const ChatTemplate* tmpl, int64_t max_length,
                               int64_t max_prompt_length, const std::string& where);

}  // namespace zephyr

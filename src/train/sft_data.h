// SFT rows as token ids and labels: a conversation rendered with the model's chat template, with
// the loss on the assistant turns only (their content and the EOS that ends them), or a row that
// is already tokenized ({"input_ids", "labels"} as HF datasets store it).
#pragma once
#include <string>
#include <vector>

#include "io/json_file.h"
#include "model/training.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace zephyr {

struct TokenizedRow {
  std::vector<int> input_ids, labels;  // labels: the id where the loss applies, else -100
  // Only for packed rows: each token's position and the index where its conversation starts.
  std::vector<int64_t> positions, seg_start;
};

// Renders {"messages": [...]} and masks everything but the assistant turns. The assistant span
// of turn i runs from the end of the conversation up to i with the generation prompt to the end
// of turn i cut after its EOS; both ends are found as token prefixes of the whole conversation.
TokenizedRow tokenize_conversation(const ChatTemplate& tmpl, const Tokenizer& tok, const ordered_json& row);

// A JSONL row in either form; `where` ("file:line", or "" when the reader adds it) prefixes errors. tok/tmpl may be null when
// only tokenized rows are expected. Rows longer than max_len (> 0) are cut at the right.
TokenizedRow sft_row(const ordered_json& row, const Tokenizer* tok, const ChatTemplate* tmpl, int64_t max_len,
                     const std::string& where);

// Right-pads rows to the longest one (pad id, label -100) into one batch.
TokenBatch make_batch(const std::vector<TokenizedRow>& rows, int pad_id);

// Packs rows (in the given order) into rows of at most max_len tokens; conversations keep their
// own positions and do not attend to each other. A conversation never straddles two packs.
std::vector<TokenizedRow> pack_rows(const std::vector<TokenizedRow>& rows, int64_t max_len);

}  // namespace zephyr

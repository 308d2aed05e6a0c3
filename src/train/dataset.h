// Training files into token rows: conversations / tokenized rows for SFT, plain text for
// pretraining. A bad line is reported as FILE:LINE and skipped (or fatal with strict).
#pragma once
#include <filesystem>
#include <vector>

#include "train/sft_data.h"

namespace zephyr {

struct LoadedRows {
  std::vector<TokenizedRow> rows;
  size_t skipped = 0;
};

LoadedRows load_sft_rows(const std::filesystem::path& file, const Tokenizer* tok, const ChatTemplate* tmpl,
                         int64_t max_len, bool strict);

// {"text": ...} JSONL (or {"input_ids"} rows) or a .txt file: every document gets BOS and EOS,
// the stream is cut into rows of max_len tokens, every token a target.
LoadedRows load_text_rows(const std::filesystem::path& file, const Tokenizer& tok, int64_t max_len, bool strict);

// Moves a seeded random fraction of rows (at least one when ratio > 0) into a held-out list.
std::vector<TokenizedRow> split_off(std::vector<TokenizedRow>& rows, double ratio, uint64_t seed);

}  // namespace zephyr

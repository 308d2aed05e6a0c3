// Training files into token rows: conversations / tokenized rows for SFT, plain text for
// pretraining. A bad line is reported as FILE:LINE and skipped (or fatal with strict).
#pragma once
#include <filesystem>
#include <vector>

#include "train/dpo.h"
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

struct LoadedPairs {
  std::vector<PreferencePair> pairs;
  size_t skipped = 0;
};

LoadedPairs load_preference_pairs(const std::filesystem::path& file, const Tokenizer* tok, const ChatTemplate* tmpl,
                                  int64_t max_length, int64_t max_prompt_length, bool strict);

// The cached reference log-probs of a DPO run: {"train": [[chosen, rejected], ...], "eval": [...]}.
void write_ref_logps(const std::filesystem::path& file, const std::vector<PairLogps>& train, const std::vector<PairLogps>& eval);
void read_ref_logps(const std::filesystem::path& file, std::vector<PairLogps>& train, std::vector<PairLogps>& eval);

// Moves a seeded random fraction of rows (at least one when ratio > 0) into a held-out list.
template <class T>
std::vector<T> split_off(std::vector<T>& rows, double ratio, uint64_t seed);

}  // namespace zephyr

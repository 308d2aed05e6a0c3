// dSFT data filtering as Zephyr-beta did it: Zephyr-alpha's users saw answers with wrong
// capitalisation and stock openings ("As an AI language model"), and beta's UltraChat was
// filtered for them. Rules over a {"messages"} JSONL, with counts per rule:
//   lowercase_start  an assistant sentence starting with a lower-case letter
//   caps_run         min_caps_run or more ALL-CAPS words in a row
//   boilerplate      an assistant turn opening with one of the phrases (the user's list)
//   exact_duplicate  the same dialogue again
//   near_duplicate   the same prompt again up to case, spacing and punctuation
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace zephyr {

struct FilterRules {
  bool lowercase_start = true;
  int min_caps_run = 3;  // 0 = off
  std::vector<std::string> openers = {"As an AI language model", "As an AI", "As a language model", "I don't have personal",
                                      "I do not have personal", "I'm just an AI", "I am just an AI", "I'm sorry, but as an AI"};
  bool duplicates = true;
  // Reads a YAML file of these keys (lowercase_start, min_caps_run, openers, duplicates); an
  // unknown key or a wrong type is an Error naming the file and key.
  static FilterRules load(const std::string& path);
};

struct FilterConfig {
  std::string in, out, rejected;  // rejected: optional JSONL of the dropped rows with their "rules"
  FilterRules rules;
  bool report_only = false;  // write every row; only count
};

struct FilterSummary {
  int64_t rows = 0, kept = 0;
  std::map<std::string, int64_t> by_rule;  // a row may break several rules
  // Rows labelled with "flaw" (as `data synth` writes them): how many of them were caught, and how
  // many unlabelled rows were dropped.
  int64_t labelled = 0, labelled_caught = 0, clean_dropped = 0;
};

// Reads config.in, writes the kept rows to config.out (atomically), prints nothing.
FilterSummary filter_chats(const FilterConfig& config);

// One assistant text against the text rules (no duplicates): the names of the rules it breaks.
std::vector<std::string> text_rule_violations(const std::string& text, const FilterRules& rules);

}  // namespace zephyr

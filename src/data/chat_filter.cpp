#include "data/chat_filter.h"


#include <cctype>
#include <fstream>
#include <set>

#include "core/error.h"
#include "io/json_file.h"
#include "io/yaml_file.h"

namespace zephyr {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower((unsigned char)c));
  return s;
}

// "e.g." "i.e." "etc." "vs." "Dr.": a period that does not end the sentence.
bool abbreviation(const std::string& text, size_t period) {
  if (text[period] != '.') return false;
  size_t start = period;
  while (start > 0 && !std::isspace((unsigned char)text[start - 1])) --start;
  const std::string word = lower(text.substr(start, period - start));
  if (word.find('.') != std::string::npos) return true;
  for (const char* a : {"etc", "vs", "mr", "mrs", "ms", "dr", "st", "no", "approx", "cf"})
    if (word == a) return true;
  return false;
}

bool breaks_lowercase_start(const std::string& text) {
  bool at_start = true;  // the text's start, or after ". " / "! " / "? " / a newline
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = (unsigned char)text[i];
    if (at_start) {
      if (std::isspace(c) || c == '"' || c == '\'' || c == '(' || c == '*' || c == '-') continue;
      if (std::islower(c)) return true;
      at_start = false;
    }
    if ((c == '.' || c == '!' || c == '?') && (i + 1 == text.size() || std::isspace((unsigned char)text[i + 1])) && !abbreviation(text, i))
      at_start = true;
    if (c == '\n') at_start = true;
  }
  return false;
}

// Words of two or more letters, all upper-case, in a row; words without letters (numbers) neither
// count nor break the run.
bool breaks_caps_run(const std::string& text, int min_run) {
  int run = 0;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace((unsigned char)text[i])) ++i;
    size_t j = i;
    int letters = 0, upper = 0;
    while (j < text.size() && !std::isspace((unsigned char)text[j])) {
      const unsigned char c = (unsigned char)text[j++];
      if (std::isalpha(c)) ++letters, upper += std::isupper(c) ? 1 : 0;
    }
    if (letters >= 2 && upper == letters) {
      if (++run >= min_run) return true;
    } else if (letters > 0) {
      run = 0;
    }
    i = j;
  }
  return false;
}

bool opens_with(const std::string& text, const std::string& phrase) {
  size_t i = 0;
  while (i < text.size() && std::isspace((unsigned char)text[i])) ++i;
  return !phrase.empty() && lower(text.substr(i, phrase.size())) == lower(phrase);
}

// A prompt's key for near duplicates: the system prompt and user turns, lower-cased, letters and
// digits only, single spaces.
std::string prompt_key(const ordered_json& messages) {
  std::string key;
  for (const auto& m : messages) {
    if (!m.is_object() || m.value("role", "") == "assistant") continue;
    std::string text = m.contains("content") && m["content"].is_string() ? m["content"].get<std::string>() : "";
    key += m.value("role", "") + ":";
    bool space = false;
    for (char c : text) {
      if (std::isalnum((unsigned char)c)) {
        if (space && key.back() != ':') key += ' ';
        key += char(std::tolower((unsigned char)c));
        space = false;
      } else {
        space = true;
      }
    }
    key += '\n';
  }
  return key;
}

}  // namespace

FilterRules FilterRules::load(const std::string& path) {
  FilterRules r;
  const YAML::Node root = load_yaml_file(path);
  if (!root.IsMap()) fail(path, "expected a mapping of lowercase_start, min_caps_run, openers, duplicates");
  reading_yaml(path, [&] {
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      try {
        if (key == "lowercase_start") r.lowercase_start = kv.second.as<bool>();
        else if (key == "min_caps_run") r.min_caps_run = kv.second.as<int>();
        else if (key == "duplicates") r.duplicates = kv.second.as<bool>();
        else if (key == "openers") r.openers = kv.second.as<std::vector<std::string>>();
        else fail(path + ": " + key, "unknown key (expected lowercase_start, min_caps_run, openers, duplicates)");
      } catch (const YAML::Exception&) {
        fail(path + ":" + std::to_string(kv.second.Mark().line + 1) + ": " + key, "has the wrong type");
      }
    }
  });
  if (r.min_caps_run < 0) fail(path + ": min_caps_run", "must be 0 (off) or more");
  return r;
}

std::vector<std::string> text_rule_violations(const std::string& text, const FilterRules& rules) {
  std::vector<std::string> out;
  if (rules.lowercase_start && breaks_lowercase_start(text)) out.push_back("lowercase_start");
  if (rules.min_caps_run > 0 && breaks_caps_run(text, rules.min_caps_run)) out.push_back("caps_run");
  for (const std::string& p : rules.openers)
    if (opens_with(text, p)) {
      out.push_back("boilerplate");
      break;
    }
  return out;
}

FilterSummary filter_chats(const FilterConfig& c) {
  refuse_output_over_input(c.out, c.in);
  if (!c.rejected.empty()) refuse_output_over_input(c.rejected, c.in);
  std::ifstream in(c.in);
  if (!in) fail(c.in, "cannot open");
  FilterSummary s;
  std::string kept, rejected;
  std::set<std::string> dialogues, prompts;
  for_each_jsonl(in, c.in, [&](const ordered_json& row, size_t line) {
    if (!row.is_object() || !row.contains("messages") || !row["messages"].is_array())
      fail(c.in + ":" + std::to_string(line), "expected {\"messages\": [{\"role\", \"content\"}, ...]}");
    ++s.rows;
    std::set<std::string> broken;
    for (const auto& m : row["messages"])
      if (m.is_object() && m.value("role", "") == "assistant" && m.contains("content") && m["content"].is_string())
        for (const std::string& r : text_rule_violations(m["content"].get<std::string>(), c.rules)) broken.insert(r);
    if (c.rules.duplicates) {
      if (!dialogues.insert(row["messages"].dump()).second) broken.insert("exact_duplicate");
      else if (!prompts.insert(prompt_key(row["messages"])).second) broken.insert("near_duplicate");
    }
    for (const std::string& r : broken) ++s.by_rule[r];
    const bool labelled = row.contains("flaw");
    s.labelled += labelled;
    if (!broken.empty()) (labelled ? s.labelled_caught : s.clean_dropped) += 1;
    if (broken.empty() || c.report_only) {
      kept += to_json_line(row) + "\n";
      ++s.kept;
    } else if (!c.rejected.empty()) {
      ordered_json r = row;
      r["rules"] = std::vector<std::string>(broken.begin(), broken.end());
      rejected += to_json_line(r) + "\n";
    }
  });
  write_file_atomic(c.out, kept);
  if (!c.rejected.empty()) write_file_atomic(c.rejected, rejected);
  return s;
}

}  // namespace zephyr

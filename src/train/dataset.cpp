#include "train/dataset.h"

#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "core/rng.h"
#include "train/world.h"

namespace zephyr {

namespace {

// Runs fn on each JSONL row (for_each_jsonl puts FILE:LINE in front of any error); a bad line is
// reported and counted, or fatal when strict.
template <class Fn>
size_t each_line(const std::filesystem::path& file, bool strict, Fn&& fn) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file.string(), "cannot open");
  size_t skipped = 0;
  for_each_jsonl(
      in, file.string(), [&](const ordered_json& row, size_t) { fn(row); },
      [&](const Error& e) {
        if (strict) throw e;
        if (World::get().main()) std::fprintf(stderr, "zephyr: skipping %s\n", e.what());  // once per job
        ++skipped;
      });
  return skipped;
}

}  // namespace

LoadedRows load_sft_rows(const std::filesystem::path& file, const Tokenizer* tok, const ChatTemplate* tmpl,
                         int64_t max_len, bool strict) {
  LoadedRows out;
  out.skipped = each_line(file, strict, [&](const ordered_json& row) {
    TokenizedRow r = sft_row(row, tok, tmpl, max_len, "");
    for (int id : r.input_ids)
      if (tok && (id < 0 || id >= tok->vocab_size())) fail("", "token id " + std::to_string(id) + " is outside the vocabulary");
    out.rows.push_back(std::move(r));
  });
  return out;
}

LoadedRows load_text_rows(const std::filesystem::path& file, const Tokenizer& tok, int64_t max_len, bool strict) {
  LoadedRows out;
  std::vector<int> stream;
  auto add_doc = [&](const std::string& text) {
    const std::vector<int> ids = tok.encode(text, true);
    stream.insert(stream.end(), ids.begin(), ids.end());
    if (tok.eos_id() >= 0 && (ids.empty() || ids.back() != tok.eos_id())) stream.push_back(tok.eos_id());
  };
  if (file.extension() == ".txt") {
    add_doc(read_file(file));
  } else {
    out.skipped = each_line(file, strict, [&](const ordered_json& row) {
      if (row.is_object() && row.contains("text") && row["text"].is_string()) return add_doc(row["text"].get<std::string>());
      TokenizedRow r = sft_row(row, nullptr, nullptr, max_len, "");
      out.rows.push_back(std::move(r));
    });
  }
  for (size_t i = 0; i + 1 < stream.size(); i += size_t(max_len)) {
    TokenizedRow r;
    r.input_ids.assign(stream.begin() + long(i), stream.begin() + long(std::min(stream.size(), i + size_t(max_len))));
    r.labels = r.input_ids;
    out.rows.push_back(std::move(r));
  }
  return out;
}

LoadedPairs load_preference_pairs(const std::filesystem::path& file, const Tokenizer* tok, const ChatTemplate* tmpl,
                                  int64_t max_length, int64_t max_prompt_length, bool strict) {
  LoadedPairs out;
  out.skipped = each_line(file, strict, [&](const ordered_json& row) {
    out.pairs.push_back(preference_pair(row, tok, tmpl, max_length, max_prompt_length, ""));
  });
  return out;
}

void write_ref_logps(const std::filesystem::path& file, const std::vector<PairLogps>& train, const std::vector<PairLogps>& eval) {
  auto list = [](const std::vector<PairLogps>& v) {
    json a = json::array();
    for (auto& p : v) a.push_back({p.chosen, p.rejected});
    return a;
  };
  write_file_atomic(file, json({{"train", list(train)}, {"eval", list(eval)}}).dump() + "\n");
}

void read_ref_logps(const std::filesystem::path& file, std::vector<PairLogps>& train, std::vector<PairLogps>& eval) {
  const json j = read_json_file(file);
  for (auto [key, out] : {std::pair{"train", &train}, std::pair{"eval", &eval}}) {
    if (!j.contains(key) || !j[key].is_array()) fail(file.string(), std::string("expected a \"") + key + "\" list");
    out->clear();
    for (auto& p : j[key]) out->push_back({p.at(0).get<double>(), p.at(1).get<double>()});
  }
}

template <class T>
std::vector<T> split_off(std::vector<T>& rows, double ratio, uint64_t seed) {
  std::vector<T> held;
  if (ratio <= 0 || rows.size() < 2) return held;
  const size_t n = std::max<size_t>(1, size_t(double(rows.size()) * ratio));
  Rng rng(seed ^ 0x5eed0f5117ull);
  std::vector<size_t> idx(rows.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  for (size_t i = idx.size() - 1; i > 0; --i) std::swap(idx[i], idx[rng.next() % (i + 1)]);
  std::vector<bool> take(rows.size(), false);
  for (size_t i = 0; i < n; ++i) take[idx[i]] = true;
  std::vector<T> keep;
  for (size_t i = 0; i < rows.size(); ++i) (take[i] ? held : keep).push_back(std::move(rows[i]));
  rows = std::move(keep);
  return held;
}

}  // namespace zephyr

namespace zephyr {
template std::vector<TokenizedRow> split_off(std::vector<TokenizedRow>&, double, uint64_t);
template std::vector<PreferencePair> split_off(std::vector<PreferencePair>&, double, uint64_t);
}  // namespace zephyr

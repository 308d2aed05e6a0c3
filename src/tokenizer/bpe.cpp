#include "tokenizer/bpe.h"

#include <cstdio>
#include <queue>

#include "core/error.h"
#include "core/utf8.h"

namespace zephyr {

Bpe Bpe::from_json(const json& model, const std::string& where) {
  Bpe bpe;
  const std::string type = model.value("type", "BPE");
  if (type != "BPE")
    fail(where + ".type", "model type \"" + type + "\" is not supported yet (only BPE; WordPiece and "
                          "Unigram tokenizers are not)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty())
      fail(where + "." + key, "non-empty value is not supported");
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(where + ".vocab", "expected an object of token -> id");
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > (1 << 24))
      fail(where + ".vocab[\"" + it.key() + "\"]", "expected a non-negative id");
    bpe.set_token(it.value().get<int>(), it.key());
  }
  bpe.bmp_id_.assign(0x10000, -1);
  for (auto& [tok, id] : bpe.token_to_id_) {
    size_t i = 0;
    if (tok.empty() || utf8::valid_char_len(tok, 0) != tok.size()) continue;
    const uint32_t cp = utf8::next_codepoint(tok, i);
    if (cp < 0x10000) bpe.bmp_id_[cp] = id;
    else bpe.char_id_[cp] = id;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    bpe.byte_id_[b] = bpe.find(name);
  }
  if (!model.contains("merges") || !model["merges"].is_array()) fail(where + ".merges", "expected an array");
  const auto& merges = model["merges"];
  bpe.merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& m = merges[r];
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail(where + ".merges[" + std::to_string(r) + "]", "expected \"left right\", got \"" + s + "\"");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      fail(where + ".merges[" + std::to_string(r) + "]", "expected a string or a pair of strings");
    }
    const int ia = bpe.find(a), ib = bpe.find(b), im = bpe.find(a + b);
    if (ia < 0 || ib < 0 || im < 0)
      fail(where + ".merges[" + std::to_string(r) + "]", "\"" + a + " " + b + "\" uses a token missing from the vocab");
    bpe.merges_.insert(pair_key(ia, ib), Merge{static_cast<int>(r), im});  // first rank wins
  }
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    bpe.unk_id_ = bpe.find(model["unk_token"].get<std::string>());
  }
  bpe.byte_fallback_ = model.value("byte_fallback", false);
  bpe.fuse_unk_ = model.value("fuse_unk", false);
  bpe.ignore_merges_ = model.value("ignore_merges", false);
  return bpe;
}

void Bpe::MergeTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  keys.assign(cap, kEmpty);
  values.assign(cap, Merge{0, 0});
  mask = cap - 1;
}

bool Bpe::MergeTable::insert(uint64_t key, Merge m) {
  for (uint64_t h = hash(key) & mask;; h = (h + 1) & mask) {
    if (keys[h] == key) return false;
    if (keys[h] == kEmpty) {
      keys[h] = key;
      values[h] = m;
      return true;
    }
  }
}

void Bpe::set_token(int id, const std::string& token) {
  if (static_cast<size_t>(id) >= id_to_token_.size()) id_to_token_.resize(static_cast<size_t>(id) + 1);
  id_to_token_[static_cast<size_t>(id)] = token;
  token_to_id_.emplace(token, id);
}

void Bpe::initial_symbols(const std::string& word, std::vector<int>& ids) const {
  bool last_unk = false;
  for (size_t i = 0; i < word.size();) {
    const size_t start = i;
    const uint32_t cp = utf8::next_codepoint(word, i);
    int id = -1;
    if (cp < 0x10000) {
      id = bmp_id_[cp];
    } else if (auto it = char_id_.find(cp); it != char_id_.end()) {
      id = it->second;
    }
    if (id >= 0) {
      ids.push_back(id);
      last_unk = false;
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (size_t k = start; k < i; ++k) all = all && byte_id_[static_cast<unsigned char>(word[k])] >= 0;
      if (all) {
        for (size_t k = start; k < i; ++k) ids.push_back(byte_id_[static_cast<unsigned char>(word[k])]);
        last_unk = false;
        continue;
      }
    }
    // Without an unk_token HF's BPE drops the character (SmolLM2's byte-level vocabulary lacks six
    // control bytes, e.g. 0x06); an error here made any text holding one unservable.
    if (unk_id_ < 0) continue;
    if (!(fuse_unk_ && last_unk)) ids.push_back(unk_id_);
    last_unk = true;
  }
}

// Applies merges lowest rank first (leftmost on ties), exactly as HF's BPE word merge.
void Bpe::merge(std::vector<int>& ids) const {
  const int n = static_cast<int>(ids.size());
  if (n < 2) return;
  std::vector<int> prev(n), next(n);
  std::vector<char> alive(n, 1);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    int rank, pos, id;
    bool operator<(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand> queue;
  auto push = [&](int pos) {
    const int nx = next[pos];
    if (nx < 0) return;
    if (const Merge* m = merges_.find(pair_key(ids[pos], ids[nx]))) queue.push({m->rank, pos, m->id});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    const Cand c = queue.top();
    queue.pop();
    if (!alive[c.pos] || next[c.pos] < 0) continue;
    const int nx = next[c.pos];
    const Merge* m = merges_.find(pair_key(ids[c.pos], ids[nx]));
    if (!m || m->id != c.id) continue;  // stale entry
    ids[c.pos] = c.id;
    alive[nx] = 0;
    next[c.pos] = next[nx];
    if (next[nx] >= 0) prev[next[nx]] = c.pos;
    if (prev[c.pos] >= 0) push(prev[c.pos]);
    push(c.pos);
  }
  int w = 0;
  for (int i = 0; i < n; ++i)
    if (alive[i]) ids[w++] = ids[i];
  ids.resize(w);
}

void Bpe::encode_word(const std::string& word, std::vector<int>& out) const {
  if (ignore_merges_) {
    const int id = find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  const bool cacheable = word.size() <= kCacheMaxWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    auto it = cache_->words.find(word);
    if (it != cache_->words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int> ids;
  ids.reserve(word.size());
  initial_symbols(word, ids);
  merge(ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    if (cache_->words.size() >= kCacheWords) cache_->words.clear();
    cache_->words.emplace(word, std::move(ids));
  }
}

}  // namespace zephyr

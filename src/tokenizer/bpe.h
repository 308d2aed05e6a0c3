// The BPE model of tokenizer.json: vocabulary, ranked merges, byte fallback, unk handling.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/json_file.h"

namespace zephyr {

class Bpe {
 public:
  // `model` is tokenizer.json's "model" object; `where` names it in errors.
  static Bpe from_json(const json& model, const std::string& where);

  // Appends the ids of one pre-tokenized word.
  void encode_word(const std::string& word, std::vector<int>& out) const;

  int size() const { return static_cast<int>(id_to_token_.size()); }
  int find(const std::string& token) const {
    auto it = token_to_id_.find(token);
    return it == token_to_id_.end() ? -1 : it->second;
  }
  const std::string& token(int id) const { return id_to_token_[static_cast<size_t>(id)]; }
  // Grows the id space for added tokens whose ids lie beyond the model's vocabulary.
  void set_token(int id, const std::string& token);

 private:
  struct Merge {
    int rank;
    int id;
  };
  static uint64_t pair_key(int a, int b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void initial_symbols(const std::string& word, std::vector<int>& ids) const;
  void merge(std::vector<int>& ids) const;

  std::unordered_map<std::string, int> token_to_id_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::unordered_map<uint32_t, int> char_id_;  // single-code-point tokens, for word setup
  int byte_id_[256];                          // <0xXX> tokens for byte fallback, -1 when absent
  int unk_id_ = -1;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;

  // Words repeat a lot in natural text; remember recent results (bounded, thread-safe).
  static constexpr size_t kCacheWords = 1 << 16;
  static constexpr size_t kCacheMaxWordBytes = 256;
  struct Cache {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int>> words;
  };
  std::unique_ptr<Cache> cache_ = std::make_unique<Cache>();
};

}  // namespace zephyr

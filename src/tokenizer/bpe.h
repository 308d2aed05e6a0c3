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
  // Merge lookup is the inner loop of encoding: an open-addressing table keyed by the id pair
  // beats std::unordered_map's node chasing by a wide margin.
  struct MergeTable {
    std::vector<uint64_t> keys;  // kEmpty where unused
    std::vector<Merge> values;
    uint64_t mask = 0;
    static constexpr uint64_t kEmpty = ~0ull;
    void reserve(size_t n);
    bool insert(uint64_t key, Merge m);  // false if the key was present (first one wins)
    const Merge* find(uint64_t key) const {
      for (uint64_t h = hash(key) & mask;; h = (h + 1) & mask) {
        if (keys[h] == key) return &values[h];
        if (keys[h] == kEmpty) return nullptr;
      }
    }
    static uint64_t hash(uint64_t k) {  // murmur3's 64-bit finalizer: both ids reach every bit
      k ^= k >> 33;
      k *= 0xff51afd7ed558ccdull;
      k ^= k >> 33;
      k *= 0xc4ceb9fe1a85ec53ull;
      return k ^ (k >> 33);
    }
  };
  MergeTable merges_;
  std::vector<int> bmp_id_;                    // single-character tokens below U+10000, by code point
  std::unordered_map<uint32_t, int> char_id_;  // single-character tokens above
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

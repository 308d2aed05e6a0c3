// Constrained decoding: which tokens of the vocabulary may come next so the answer stays a prefix
// of a value the JSON grammar accepts, and can still be completed within the tokens left.
//
// Masks are computed by walking the vocabulary sorted by bytes (a trie in all but name: tokens
// sharing a prefix share the matcher's work on it, and a dead prefix skips them all), cached per
// matcher state (inside a string the state repeats token after token), and inside strings the
// tokens that only add ordinary characters are taken as a block: only the rest are walked.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "generate/json_grammar.h"
#include "tokenizer/tokenizer.h"

namespace zephyr {

// A tokenizer's tokens as bytes, sorted, built once per model.
class TokenVocabulary {
 public:
  explicit TokenVocabulary(const Tokenizer& tok);
  int size() const { return int(bytes_.size()); }
  const std::string& bytes(int id) const { return bytes_[size_t(id)]; }

  // Tokens in byte order (specials and empty tokens left out), with each one's common prefix
  // length with the one before it.
  struct Sorted {
    std::vector<int32_t> ids;
    std::vector<uint16_t> lcp;
  };
  const Sorted& all() const { return all_; }
  // The tokens that are not plain string content (see below), sorted the same way.
  const Sorted& not_plain() const { return not_plain_; }
  // Plain string content: no quote, backslash or control byte, whole UTF-8 characters. Inside a
  // JSON string any of them leaves the matcher where it was.
  const std::vector<uint64_t>& plain() const { return plain_; }

 private:
  std::vector<std::string> bytes_;
  Sorted all_, not_plain_;
  std::vector<uint64_t> plain_;
};

// One generation's constraint. Not thread-safe; the cache may be shared by generations of the
// same grammar and vocabulary on one thread.
class JsonConstraint {
 public:
  struct Cache;
  JsonConstraint(std::shared_ptr<const JsonGrammar> grammar, std::shared_ptr<const TokenVocabulary> vocab,
                 std::vector<int64_t> eos_ids, std::shared_ptr<Cache> cache = nullptr);
  ~JsonConstraint();

  // Sets the logits of tokens that cannot come next to -inf: tokens that leave the grammar, and
  // tokens after which the value could no longer be finished in `budget` - 1 more tokens. EOS
  // stays only where the value is complete. False when no token is left (the budget is smaller
  // than the shortest completion).
  bool apply(std::span<float> logits, int64_t budget);
  // The token chosen (one apply() allowed).
  void accept(int id);
  // The value is complete and nothing may follow: the generation ends here.
  bool finished() const { return matcher_.finished(); }
  // The fewest tokens that can still complete the value (bytes: every byte has a token).
  int64_t min_tokens() const { return matcher_.min_completion(); }
  // Mask statistics, for benchmarks and tests.
  int64_t cache_hits() const { return hits_; }
  int64_t cache_misses() const { return misses_; }

 private:
  struct Mask;
  void compute(Mask& m, int64_t budget_left) const;

  std::shared_ptr<const JsonGrammar> grammar_;
  std::shared_ptr<const TokenVocabulary> vocab_;
  std::vector<int64_t> eos_;
  std::shared_ptr<Cache> cache_;
  JsonMatcher matcher_;
  int64_t hits_ = 0, misses_ = 0;
};

// What a request asks its answer to be: a JSON value of this grammar. The mask cache is shared by
// every generation of the grammar (on one thread: the engine's, or the CLI's).
struct StructuredOutput {
  std::shared_ptr<const JsonGrammar> grammar;
  std::shared_ptr<JsonConstraint::Cache> cache;
  static std::shared_ptr<const StructuredOutput> from(JsonGrammar g);
  // An Error (field "max_tokens") when the schema's shortest value may not fit in max_tokens: the
  // masks keep room to finish counting a token per byte.
  void check_fits(int64_t max_tokens) const;
};

// The vocabulary of a tokenizer, built on first use and kept (one per tokenizer object).
std::shared_ptr<const TokenVocabulary> token_vocabulary(const Tokenizer& tok);

}  // namespace zephyr

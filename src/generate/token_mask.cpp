#include "generate/token_mask.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <mutex>

#include "core/error.h"

namespace zephyr {

namespace {

// Tokens whose completion needs more than this many bytes are listed with that need, so a mask
// cached without a budget still serves any budget above it; below it masks are computed afresh.
constexpr int64_t kHeavy = 16;
constexpr size_t kMaxCached = 4096;  // masks of ~6 KB (49k tokens)

// Plain string content: whole UTF-8 characters (well-formed, as the matcher wants them), no
// quote, backslash or control byte.
bool plain_string_bytes(const std::string& b) {
  if (b.empty()) return false;
  for (size_t i = 0; i < b.size();) {
    const auto c = uint8_t(b[i]);
    if (c == '"' || c == '\\' || c < 0x20) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    int n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c >= 0xE0 && c <= 0xEF) n = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) n = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return false;
    for (int k = 1; k <= n; ++k) {
      if (i + size_t(k) >= b.size()) return false;
      const auto x = uint8_t(b[i + size_t(k)]);
      if (x < lo || x > hi) return false;
      lo = 0x80, hi = 0xBF;
    }
    i += size_t(n) + 1;
  }
  return true;
}

TokenVocabulary::Sorted sorted(std::vector<int32_t> ids, const std::vector<std::string>& bytes) {
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return bytes[size_t(a)] < bytes[size_t(b)]; });
  TokenVocabulary::Sorted s;
  s.lcp.resize(ids.size());
  for (size_t i = 1; i < ids.size(); ++i) {
    const std::string &a = bytes[size_t(ids[i - 1])], &b = bytes[size_t(ids[i])];
    size_t k = 0;
    while (k < a.size() && k < b.size() && a[k] == b[k]) ++k;
    s.lcp[i] = uint16_t(std::min<size_t>(k, 65535));
  }
  s.ids = std::move(ids);
  return s;
}

void set_bit(std::vector<uint64_t>& w, int64_t i) { w[size_t(i >> 6)] |= uint64_t(1) << (i & 63); }
void clear_bit(std::vector<uint64_t>& w, int64_t i) { w[size_t(i >> 6)] &= ~(uint64_t(1) << (i & 63)); }

}  // namespace

TokenVocabulary::TokenVocabulary(const Tokenizer& tok) {
  const int n = tok.vocab_size();
  bytes_.resize(size_t(n));
  plain_.assign(size_t(n + 63) / 64, 0);
  std::vector<int32_t> all, rest;
  for (int id = 0; id < n; ++id) {
    if (tok.is_special(id)) continue;  // never part of a value (EOS is handled apart)
    bytes_[size_t(id)] = tok.token_bytes(id);
    if (bytes_[size_t(id)].empty()) continue;
    all.push_back(id);
    if (plain_string_bytes(bytes_[size_t(id)])) set_bit(plain_, id);
    else rest.push_back(id);
  }
  all_ = sorted(std::move(all), bytes_);
  not_plain_ = sorted(std::move(rest), bytes_);
}

// Allowed tokens of one state: bits, plus (inside a string) the plain block when block_min fits
// the budget, minus the heavy tokens whose completion does not fit.
struct JsonConstraint::Mask {
  std::vector<uint64_t> bits;
  bool block = false;
  int64_t block_min = 0;
  std::vector<std::pair<int32_t, int64_t>> heavy;
  bool eos = false;
};

struct JsonConstraint::Cache {
  std::unordered_map<std::string, Mask> masks;
};

JsonConstraint::JsonConstraint(std::shared_ptr<const JsonGrammar> grammar, std::shared_ptr<const TokenVocabulary> vocab,
                               std::vector<int64_t> eos_ids, std::shared_ptr<Cache> cache)
    : grammar_(std::move(grammar)), vocab_(std::move(vocab)), eos_(std::move(eos_ids)),
      cache_(cache ? std::move(cache) : std::make_shared<Cache>()), matcher_(*grammar_) {}

JsonConstraint::~JsonConstraint() = default;

// Walks the vocabulary (or, inside a string, the tokens that are not plain content) from the
// current state. budget_left >= 0: keep only tokens whose completion fits in it.
void JsonConstraint::compute(Mask& m, int64_t budget_left) const {
  const TokenVocabulary& v = *vocab_;
  m.bits.assign(size_t(v.size() + 63) / 64, 0);
  m.heavy.clear();
  m.eos = matcher_.complete();
  m.block = matcher_.in_string();
  if (m.block) m.block_min = matcher_.min_completion();
  const TokenVocabulary::Sorted& list = m.block ? v.not_plain() : v.all();
  static thread_local std::vector<JsonMatcher> stack;  // stack[d]: the state after d bytes of the current token
  stack.resize(1, matcher_);
  stack[0] = matcher_;
  size_t valid = 0;           // stack[0..valid] holds the current token's prefixes
  size_t dead = SIZE_MAX;     // a prefix of this length is refused
  for (size_t i = 0; i < list.ids.size(); ++i) {
    const size_t shared = list.lcp[i];
    if (shared >= dead) continue;  // starts with the refused prefix
    dead = SIZE_MAX;
    valid = std::min(valid, shared);
    const int32_t id = list.ids[i];
    const std::string& b = v.bytes(id);
    if (stack.size() < b.size() + 1) stack.resize(b.size() + 1, matcher_);
    bool ok = true;
    for (size_t d = valid; d < b.size(); ++d) {
      stack[d + 1] = stack[d];
      if (!stack[d + 1].feed(uint8_t(b[d]))) {
        dead = d + 1;
        valid = d;
        ok = false;
        break;
      }
      valid = d + 1;
    }
    if (!ok) continue;
    const int64_t need = stack[b.size()].min_completion();
    if (budget_left >= 0 ? need > budget_left : false) continue;
    if (budget_left < 0 && need > kHeavy) m.heavy.emplace_back(id, need);
    set_bit(m.bits, id);
  }
}

bool JsonConstraint::apply(std::span<float> logits, int64_t budget) {
  if (budget <= 0) return false;
  const int64_t left = budget - 1;  // tokens after this one
  Mask fresh;
  const Mask* m = &fresh;
  if (left < kHeavy) {
    compute(fresh, left);
  } else {
    std::string key = matcher_.key();
    auto it = cache_->masks.find(key);
    if (it == cache_->masks.end()) {
      ++misses_;
      if (cache_->masks.size() >= kMaxCached) cache_->masks.clear();
      Mask computed;
      compute(computed, -1);
      it = cache_->masks.emplace(std::move(key), std::move(computed)).first;
    } else {
      ++hits_;
    }
    m = &it->second;
  }
  static thread_local std::vector<uint64_t> words;
  words = m->bits;
  if (m->block && m->block_min <= left)
    for (size_t w = 0; w < words.size(); ++w) words[w] |= vocab_->plain()[w];
  for (const auto& [id, need] : m->heavy)
    if (need > left) clear_bit(words, id);
  const int64_t n = int64_t(logits.size());
  bool any = false;
  for (int64_t i = 0; i < n; i += 64) {
    const size_t w = size_t(i >> 6);
    uint64_t allowed = w < words.size() ? words[w] : 0;
    for (int64_t e : eos_)  // EOS: where the value is complete
      if (m->eos && e >= i && e < i + 64) allowed |= uint64_t(1) << (e - i);
    if (i + 64 > n) allowed |= ~uint64_t(0) << (n - i);  // past the end: nothing to clear
    if (allowed == ~uint64_t(0)) {
      any = true;
      continue;
    }
    for (uint64_t off = ~allowed; off; off &= off - 1) logits[size_t(i + std::countr_zero(off))] = -INFINITY;
    any = any || (allowed & (i + 64 > n ? ~(~uint64_t(0) << (n - i)) : ~uint64_t(0))) != 0;
  }
  return any;
}

void JsonConstraint::accept(int id) {
  if (std::find(eos_.begin(), eos_.end(), int64_t(id)) != eos_.end()) return;
  if (id < 0 || id >= vocab_->size()) return;
  for (char c : vocab_->bytes(id)) matcher_.feed(uint8_t(c));
}

std::shared_ptr<const StructuredOutput> StructuredOutput::from(JsonGrammar g) {
  auto s = std::make_shared<StructuredOutput>();
  s->grammar = std::make_shared<const JsonGrammar>(std::move(g));
  s->cache = std::make_shared<JsonConstraint::Cache>();
  return s;
}

void StructuredOutput::check_fits(int64_t max_tokens) const {
  const int64_t need = grammar->node(grammar->root()).min_bytes;
  if (need > max_tokens)
    fail_field("max_tokens", "the schema's shortest answer is " + std::to_string(need) + " bytes, which may need as many tokens; max_tokens is " +
                                 std::to_string(max_tokens));
}

std::shared_ptr<const TokenVocabulary> token_vocabulary(const Tokenizer& tok) {
  static std::mutex mu;
  static std::map<const Tokenizer*, std::shared_ptr<const TokenVocabulary>> built;
  std::lock_guard<std::mutex> lock(mu);
  auto& v = built[&tok];
  if (!v) v = std::make_shared<const TokenVocabulary>(tok);
  return v;
}

}  // namespace zephyr

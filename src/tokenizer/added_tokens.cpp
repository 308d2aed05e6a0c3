#include "tokenizer/added_tokens.h"

#include <cctype>

namespace zephyr {
namespace {

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

bool is_word_byte(unsigned char c) { return c >= 0x80 || std::isalnum(c) || c == '_'; }

}  // namespace

void AddedTokens::add(const AddedToken& t) {
  if (t.content.empty()) return;
  for (auto& existing : tokens_)
    if (existing.content == t.content) {
      existing = t;
      return;
    }
  tokens_.push_back(t);
  int node = 0;
  for (unsigned char c : t.content) {
    int next = child(node, c);
    if (next < 0) {
      next = static_cast<int>(trie_.size());
      trie_.push_back(Node{});
      trie_[static_cast<size_t>(node)].children.emplace_back(c, next);
    }
    node = next;
  }
  trie_[static_cast<size_t>(node)].token = static_cast<int>(tokens_.size()) - 1;
  first_byte_[static_cast<unsigned char>(t.content[0])] = true;
}

int AddedTokens::child(int node, unsigned char c) const {
  for (auto [b, n] : trie_[static_cast<size_t>(node)].children)
    if (b == c) return n;
  return -1;
}

int AddedTokens::longest_at(std::string_view text, size_t i, size_t& len) const {
  int best = -1, node = 0;
  for (size_t j = i; j < text.size(); ++j) {
    node = child(node, static_cast<unsigned char>(text[j]));
    if (node < 0) break;
    const int t = trie_[static_cast<size_t>(node)].token;
    if (t >= 0) {
      const AddedToken& tok = tokens_[static_cast<size_t>(t)];
      const bool boundary_ok = !tok.single_word ||
                               ((i == 0 || !is_word_byte(static_cast<unsigned char>(text[i - 1]))) &&
                                (j + 1 == text.size() || !is_word_byte(static_cast<unsigned char>(text[j + 1]))));
      if (boundary_ok) {
        best = t;
        len = j + 1 - i;
      }
    }
  }
  return best;
}

std::vector<AddedTokens::Segment> AddedTokens::split(std::string_view text) const {
  std::vector<Segment> out;
  size_t text_start = 0;  // start of the pending plain-text run
  for (size_t i = 0; i < text.size();) {
    size_t len = 0;
    const int t = first_byte_[static_cast<unsigned char>(text[i])] ? longest_at(text, i, len) : -1;
    if (t < 0) {
      ++i;
      continue;
    }
    const AddedToken& tok = tokens_[static_cast<size_t>(t)];
    size_t b = i, e = i + len;
    if (tok.lstrip)
      while (b > text_start && is_ascii_space(text[b - 1])) --b;
    if (tok.rstrip)
      while (e < text.size() && is_ascii_space(text[e])) ++e;
    if (b > text_start) out.push_back({text.substr(text_start, b - text_start), -1});
    out.push_back({text.substr(i, len), tok.id});
    text_start = i = e;
  }
  if (text_start < text.size()) out.push_back({text.substr(text_start), -1});
  return out;
}

}  // namespace zephyr

// Added (mostly special) tokens: found in the raw text before any normalization, as HF does.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace zephyr {

struct AddedToken {
  std::string content;
  int id = -1;
  bool special = false;
  bool lstrip = false;       // swallow whitespace on the left of a match
  bool rstrip = false;       // ... and on the right
  bool single_word = false;  // match only where not inside a word
};

class AddedTokens {
 public:
  void add(const AddedToken& t);
  bool empty() const { return tokens_.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }

  // One piece of input: either plain text to tokenize or a matched added token.
  struct Segment {
    std::string_view text;
    int token_id = -1;  // >= 0 for an added token
  };
  // Splits text at leftmost-longest matches of the added tokens.
  std::vector<Segment> split(std::string_view text) const;

 private:
  // Byte trie over the token contents: children[node] are (byte, child) pairs.
  struct Node {
    std::vector<std::pair<unsigned char, int>> children;
    int token = -1;  // index into tokens_ of a token ending here
  };
  int child(int node, unsigned char c) const;
  // Index of the longest token matching at text[i], and its length.
  int longest_at(std::string_view text, size_t i, size_t& len) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> trie_{Node{}};
  bool first_byte_[256] = {};
};

}  // namespace zephyr

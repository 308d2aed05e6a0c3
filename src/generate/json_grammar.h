// Structured outputs: a JSON schema (OpenAI's response_format subset) compiled to a grammar, and
// a byte-level matcher over it that says which bytes may come next. Hand-written: the token masks
// (token_mask.h) advance this matcher byte by byte across a whole vocabulary, which needs a state
// that copies and compares cheaply; validator libraries check finished documents only.
//
// The subset: type (object, array, string, number, integer, boolean, null, or a list of them),
// properties, required, additionalProperties, items, enum, const, anyOf, minItems, maxItems,
// minimum, maximum, $defs/definitions with $ref "#/$defs/NAME"; annotations (title, description,
// default, examples, $schema, $id, $comment, strict) are ignored; any other keyword is an Error
// naming it. Objects are written with their declared properties in order (optional ones may be
// left out; required ones never are), which always validates.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/json_file.h"

namespace zephyr {

class JsonGrammar {
 public:
  enum class Kind : uint8_t { Object, Array, String, Number, Integer, Literal, Alt };
  struct Property {
    std::string key;  // JSON-encoded, quotes included
    int node = -1;
    bool required = false;
  };
  struct Node {
    Kind kind = Kind::Alt;
    std::vector<Property> props;  // Object
    bool free_keys = false;       // Object without properties: any keys, values `items`
    int items = -1;               // Array items, free Object values
    int64_t min_items = 0, max_items = -1;
    bool has_min = false, has_max = false;  // Number, Integer
    double minimum = 0, maximum = 0;
    std::string literal;    // Literal: the exact text
    std::vector<int> alts;  // Alt
    int64_t min_bytes = 0;  // the shortest text of a value
  };

  // Throws Error (field "response_format") naming the keyword or value that is not supported.
  static JsonGrammar from_schema(const ordered_json& schema);
  // Any JSON object (response_format {"type": "json_object"}).
  static JsonGrammar any_object();

  const Node& node(int i) const { return nodes_[size_t(i)]; }
  int root() const { return root_; }

 private:
  int add(Node n);
  int any_value();
  int compile(const ordered_json& s, const std::string& where, int depth);
  int resolve_ref(const std::string& ref, const std::string& where, int depth);
  void compute_min_bytes();

  std::vector<Node> nodes_;
  int root_ = -1, any_ = -1;
  const ordered_json* doc_ = nullptr;
  std::vector<std::pair<std::string, int>> refs_;  // $ref target -> node (allocated before its body)
};

// Where the matcher is inside one possible parse: a stack of frames, outermost first.
struct JsonFrame {
  int32_t node = -1;  // -1: the document root
  uint8_t phase = 0;
  uint8_t ws = 0;     // whitespace bytes in a row here (capped: a model cannot pad forever)
  int32_t a = 0, b = 0, c = 0;
  double num = 0;     // bounded numbers: the digits read so far
  bool operator==(const JsonFrame&) const = default;
};
using JsonThread = std::vector<JsonFrame>;

// The set of parses still possible after the bytes so far (anyOf and enums keep several apart).
class JsonMatcher {
 public:
  explicit JsonMatcher(const JsonGrammar& g);
  // Advances by one byte; false (and the state unchanged) when no parse accepts it.
  bool feed(uint8_t byte);
  bool feed(std::string_view bytes);
  // A whole value has been read (the text may end here).
  bool complete() const;
  // The value is complete and nothing but whitespace could follow: generation ends.
  bool finished() const;
  // The fewest bytes that complete a value from here.
  int64_t min_completion() const;
  // A key for the mask cache: equal states, equal keys.
  std::string key() const;
  bool dead() const { return threads_.empty(); }
  // Every parse is inside a string, between characters: plain characters leave the state as is.
  bool in_string() const;

 private:
  // One byte that only changes the top frame of a single parse, done in place (no copies):
  // 1 done, 0 refused, -1 not such a byte.
  int fast_step(uint8_t byte);
  void step(const JsonThread& t, uint8_t byte, std::vector<JsonThread>& out) const;
  void start_value(JsonThread t, int node, uint8_t byte, std::vector<JsonThread>& out) const;
  int64_t thread_min(const JsonThread& t) const;
  const JsonGrammar* g_;
  std::vector<JsonThread> threads_;
};

}  // namespace zephyr

// Structured outputs: the byte-level JSON matcher accepts what the schema allows and nothing
// else, token masks are exactly the tokens the matcher accepts (real vocabularies: sentencepiece
// and byte-level), and a constrained generation always ends in a complete value within its budget.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "core/error.h"
#include "generate/json_grammar.h"
#include "generate/token_mask.h"
#include "tokenizer/tokenizer.h"

using namespace zephyr;
namespace fs = std::filesystem;

namespace {

const char* kPerson = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 2},
    "ok": {"type": "boolean"},
    "score": {"anyOf": [{"type": "number"}, {"type": "null"}]}
  },
  "required": ["name", "ok"],
  "additionalProperties": false
})";

JsonGrammar grammar(const std::string& schema) { return JsonGrammar::from_schema(ordered_json::parse(schema)); }

// Feeds text; how many bytes were accepted.
size_t accepted(JsonMatcher& m, std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i)
    if (!m.feed(uint8_t(text[i]))) return i;
  return text.size();
}

Tokenizer tokenizer(const char* name) { return Tokenizer::load(fs::path(ZEPHYR_REF_MODELS) / name / "models" / "tokenizer.json"); }

}  // namespace

TEST(JsonGrammar, MatcherAcceptsTheSchemaAndRefusesTheRest) {
  const JsonGrammar g = grammar(kPerson);
  for (const char* ok : {R"({"name":"Al","age":30,"ok":true})", R"({"name": "\u00e9\n\"", "ok": false})",
                         R"( { "name" : "x" , "tags" : [ "a" , "b" ] , "ok" : true , "score" : -1.5e3 } )",
                         R"({"name":"été 😀","age":0,"ok":false,"score":null})", R"({"name":"","ok":true,"score":0})"}) {
    JsonMatcher m(g);
    ASSERT_EQ(accepted(m, ok), std::string_view(ok).size()) << ok;
    EXPECT_TRUE(m.complete()) << ok;
  }
  // Each is accepted up to the byte where it goes wrong, and refused there.
  struct Bad {
    const char* text;
    size_t good;
  };
  for (const Bad& b : {Bad{R"({"age":3)", 2},                       // name is required and comes first
                       Bad{R"({"name":"a","age":121)", 20},         // beyond the maximum
                       Bad{R"({"name":"a","age":-1)", 19},          // below the minimum ("-0" is 0)
                       Bad{R"({"name":"a","age":1.5)", 19},         // an integer
                       Bad{R"({"name":"a","ok":true,"extra")", 23},  // no additional properties
                       Bad{"{\"name\":\"a\x01", 10},                // control character in a string
                       Bad{"{\"name\":\"\xC0\x80", 9},              // overlong UTF-8
                       Bad{"{\"name\":\"\xED\xA0\x80", 10},         // a surrogate
                       Bad{R"({"name":"a","tags":["a","b","c"])", 27},  // maxItems 2
                       Bad{R"({"name":"a","tags":["d"])", 21},      // not in the enum
                       Bad{R"({"name":"a"})", 11},                  // ok is required
                       Bad{R"({"name":"a","ok":true}})", 22}}) {      // nothing after the value
    JsonMatcher m(g);
    EXPECT_EQ(accepted(m, b.text), b.good) << b.text;
  }
  JsonMatcher m(g);
  accepted(m, R"({"name":"a","ok":true})");
  EXPECT_TRUE(m.finished());
  const JsonGrammar integer = grammar(R"({"type": "integer"})");
  JsonMatcher n(integer);
  accepted(n, "12");
  EXPECT_TRUE(n.complete());
  EXPECT_FALSE(n.finished());  // a number at the top may go on
}

TEST(JsonGrammar, ShortestCompletion) {
  const JsonGrammar g = grammar(kPerson);
  JsonMatcher m(g);
  EXPECT_EQ(m.min_completion(), int64_t(std::string(R"({"name":"","ok":true})").size()));
  accepted(m, R"({"name":"ab)");
  EXPECT_EQ(m.min_completion(), int64_t(std::string(R"(","ok":true})").size()));
  accepted(m, R"(","tags":[)");
  EXPECT_EQ(m.min_completion(), int64_t(std::string(R"(],"ok":true})").size()));
  accepted(m, R"("b",)");
  EXPECT_EQ(m.min_completion(), int64_t(std::string(R"("a"],"ok":true})").size()));
  const JsonGrammar list = grammar(R"({"$defs": {"n": {"type": "object", "properties": {"next": {"anyOf": [{"$ref": "#/$defs/n"}, {"type": "null"}]}},
                           "required": ["next"]}}, "$ref": "#/$defs/n"})");
  JsonMatcher r(list);
  EXPECT_EQ(r.min_completion(), int64_t(std::string(R"({"next":null})").size()));
  EXPECT_EQ(accepted(r, R"({"next":{"next":{"next":null}}})"), std::string(R"({"next":{"next":{"next":null}}})").size());
}

TEST(JsonGrammar, ShortestCompletionOfABoundedNumberCountsTheDigitsItStillNeeds) {
  // A number may be complete as text but outside its bounds: "4" toward a minimum of 9 needs one
  // more digit ("40"), or the masks would let a generation run out of tokens mid-value.
  struct Case {
    const char* schema;
    const char* prefix;
    int64_t need;
  };
  for (const Case& c : {Case{R"({"type": "number", "minimum": 9, "maximum": 120})", "4", 1},
                        Case{R"({"type": "number", "minimum": 9, "maximum": 120})", "12", 0},
                        Case{R"({"type": "number", "minimum": 9, "maximum": 120})", "12.", 1},
                        Case{R"({"type": "integer", "minimum": 1000})", "1", 3},
                        Case{R"({"type": "number", "minimum": 4.5, "maximum": 4.7})", "4", 2},
                        Case{R"({"type": "number", "minimum": 4.5, "maximum": 4.7})", "4.", 1},
                        Case{R"({"type": "number", "minimum": 0.25, "maximum": 0.3})", "0", 2},
                        Case{R"({"type": "integer", "minimum": -20, "maximum": -10})", "-", 2},
                        Case{R"({"type": "integer", "minimum": -20, "maximum": -10})", "-1", 1},
                        Case{R"({"type": "integer", "minimum": -20, "maximum": -10})", "", 3},
                        Case{R"({"type": "object", "properties": {"a": {"type": "integer", "minimum": -20, "maximum": -10}}, "required": ["a"]})", "{\"a\":", 4},
                        Case{R"({"type": "array", "items": {"type": "integer", "minimum": 9}})", "[4", 2}}) {
    const JsonGrammar g = grammar(c.schema);
    JsonMatcher m(g);
    ASSERT_EQ(accepted(m, c.prefix), std::string(c.prefix).size()) << c.schema << " " << c.prefix;
    EXPECT_EQ(m.min_completion(), c.need) << c.schema << " after " << c.prefix;
  }
}

TEST(JsonGrammar, SchemasOutsideTheSubsetAreRefusedByKeyword) {
  const auto message = [](const std::string& schema) {
    try {
      grammar(schema);
    } catch (const Error& e) {
      EXPECT_EQ(e.field(), "response_format");
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message(R"({"type": "string", "pattern": "^a"})").find("\"pattern\" is not supported"), std::string::npos);
  EXPECT_NE(message(R"({"type": "object", "properties": {"a": {"format": "date"}}})").find("/properties/a"), std::string::npos);
  EXPECT_NE(message(R"({"type": "object", "properties": {}, "required": ["x"]})").find("\"x\" is not among"), std::string::npos);
  EXPECT_NE(message(R"({"$ref": "#/$defs/missing"})").find("does not name"), std::string::npos);
  EXPECT_NE(message(R"({"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"})").find("loop"), std::string::npos);
  EXPECT_NE(message(R"({"type": "array", "minItems": 3, "maxItems": 1})").find("minItems"), std::string::npos);
  EXPECT_NE(message(R"({"type": "integer", "minimum": 0.2, "maximum": 0.8})").find("no integer"), std::string::npos);
  EXPECT_NE(message(R"({"type": "strin"})").find("unknown type"), std::string::npos);
  EXPECT_EQ(message(R"({"type": ["string", "null"], "description": "d", "title": "t"})"), "accepted");
}

// The mask from the cache-and-shortcut walk equals a token-by-token check with the matcher.
TEST(JsonGrammar, MaskIsExactlyTheTokensTheMatcherAccepts) {
  for (const char* name : {"tokenizer-llama2", "tokenizer-llama3"}) {
    const Tokenizer tok = tokenizer(name);
    auto vocab = std::make_shared<const TokenVocabulary>(tok);
    auto g = std::make_shared<const JsonGrammar>(grammar(kPerson));
    const int64_t eos = tok.eos_id();
    for (const char* prefix : {"", "{", R"({"name":"x)", R"({"name":"x\)", "{\"name\":\"\xC3", R"({"name":"x","ok":tr)",
                               R"({"name":"x","ok":true,"score":1.2)", R"({"name":"x","tags":["a")", R"({"name":"x","age":1)",
                               R"({"name":"x","ok":true})"}) {
      JsonConstraint c(g, vocab, {eos});
      JsonMatcher m(*g);
      ASSERT_EQ(accepted(m, prefix), std::string_view(prefix).size());
      // Drive the constraint with single-byte tokens of the prefix.
      for (char ch : std::string_view(prefix)) {
        int id = -1;
        for (int i = 0; i < vocab->size() && id < 0; ++i)
          if (vocab->bytes(i) == std::string(1, ch)) id = i;
        ASSERT_GE(id, 0) << name << ": no token for byte " << int(uint8_t(ch));
        c.accept(id);
      }
      for (int pass = 0; pass < 2; ++pass) {  // the second from the cache
        std::vector<float> logits(size_t(tok.vocab_size()), 0.0f);
        ASSERT_TRUE(c.apply(logits, 1000));
        for (int id = 0; id < tok.vocab_size(); ++id) {
          bool want;
          if (id == eos) {
            want = m.complete();
          } else if (tok.is_special(id) || vocab->bytes(id).empty()) {
            want = false;
          } else {
            JsonMatcher t = m;
            want = accepted(t, vocab->bytes(id)) == vocab->bytes(id).size();
          }
          ASSERT_EQ(std::isfinite(logits[size_t(id)]), want)
              << name << " after '" << prefix << "': token " << id << " '" << vocab->bytes(id) << "' pass " << pass;
        }
      }
      EXPECT_EQ(c.cache_hits(), 1) << name << " " << prefix;
    }
  }
}

// Random logits, tight budgets: every answer is a complete value that fits (the budget leaves
// room to finish), and ends as soon as it is complete.
TEST(JsonGrammar, ConstrainedDrawsAlwaysFinishWithinTheBudget) {
  const Tokenizer tok = tokenizer("tokenizer-llama3");
  auto vocab = token_vocabulary(tok);
  auto so = StructuredOutput::from(grammar(kPerson));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const int64_t eos = tok.eos_id();
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t budget = 21 + trial % 20;  // the shortest value is 21 bytes
    JsonConstraint c(so->grammar, vocab, {eos}, so->cache);
    std::string text;
    bool done = false;
    for (int64_t step = 0; step < budget && !done; ++step) {
      std::vector<float> logits(size_t(tok.vocab_size()));
      for (float& l : logits) l = normal(rng);
      ASSERT_TRUE(c.apply(logits, budget - step)) << "trial " << trial << " step " << step << ": " << text;
      const int id = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
      if (id == eos) break;
      c.accept(id);
      text += vocab->bytes(id);
      done = c.finished();
    }
    const json v = json::parse(text);  // throws if incomplete
    EXPECT_TRUE(v.contains("name") && v.contains("ok")) << text;
  }
}

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "test_util.h"
#include "core/utf8.h"
#include "tokenizer/tokenizer.h"

using namespace zephyr;
using zephyr::test::error_of;
namespace fs = std::filesystem;

namespace {

const fs::path kMistral = fs::path(ZEPHYR_REF_MODELS) / "tokenizer-llama2" / "models";
const fs::path kLlama3 = fs::path(ZEPHYR_REF_MODELS) / "tokenizer-llama3" / "models";

fs::path temp_dir(const std::string& name) {
  const fs::path d = test::fresh_temp_path(name);
  fs::create_directories(d);
  return d;
}

void write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

}  // namespace

TEST(Tokenizer, mistral_vocab_encodes_known_ids_with_bos) {
  if (!fs::exists(kMistral)) GTEST_SKIP() << "run `make refs` for the real tokenizer files";
  const Tokenizer tok = Tokenizer::load(kMistral);
  EXPECT_EQ(tok.vocab_size(), 32000);
  EXPECT_EQ(tok.encode("Hello world"), (std::vector<int>{1, 22557, 1526}));
  EXPECT_EQ(tok.encode("Hello world", false), (std::vector<int>{22557, 1526}));
  // A newline has no vocab entry of its own: byte fallback gives <0x0A> (id 13).
  EXPECT_EQ(tok.encode("a\nb", false), (std::vector<int>{264, 13, 28726}));
  EXPECT_EQ(tok.decode({1, 22557, 1526, 2}), "Hello world");
  EXPECT_EQ(tok.decode({1, 22557, 1526, 2}, false), "<s> Hello world</s>");
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
}

TEST(Tokenizer, stream_decoder_matches_whole_decode_and_never_splits_a_character) {
  if (!fs::exists(kMistral)) GTEST_SKIP() << "run `make refs` for the real tokenizer files";
  for (const fs::path& path : {kMistral, kLlama3}) {
    const Tokenizer tok = Tokenizer::load(path);
    const std::string text = "Grüße 🎉🎉 日本語 done.\n  x 👩‍👩‍👧";
    const auto ids = tok.encode(text, false);
    StreamDecoder stream(tok);
    std::string streamed;
    for (int id : ids) {
      const std::string piece = stream.push(id);
      EXPECT_EQ(utf8::find_invalid(piece), std::string::npos) << path;
      EXPECT_EQ(piece.find(utf8::kReplacementChar), std::string::npos) << path;
      streamed += piece;
    }
    streamed += stream.finish();
    EXPECT_EQ(streamed, tok.decode(ids)) << path;
    EXPECT_EQ(streamed, text) << path;
  }
}

TEST(Tokenizer, invalid_utf8_input_names_the_byte) {
  if (!fs::exists(kMistral)) GTEST_SKIP() << "run `make refs` for the real tokenizer files";
  const Tokenizer tok = Tokenizer::load(kMistral);
  EXPECT_NE(error_of([&] { tok.encode("abc\xFFz"); }).find("invalid UTF-8 at byte 3"), std::string::npos);
  EXPECT_NE(error_of([&] { tok.decode({5, 99999}); }).find("token id 99999 is outside the vocabulary"), std::string::npos);
}

TEST(Tokenizer, bad_files_give_errors_naming_file_and_field) {
  const fs::path d = temp_dir("badtok");
  EXPECT_NE(error_of([&] { Tokenizer::load(d / "nope.json"); }).find("nope.json"), std::string::npos);
  EXPECT_NE(error_of([&] { Tokenizer::load(d); }).find("tokenizer.json: no such file"), std::string::npos);

  write(d / "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [");
  EXPECT_NE(error_of([&] { Tokenizer::load(d); }).find("invalid JSON at byte"), std::string::npos);

  write(d / "tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})");
  const std::string wp = error_of([&] { Tokenizer::load(d); });
  EXPECT_NE(wp.find("model.type"), std::string::npos) << wp;
  EXPECT_NE(wp.find("WordPiece"), std::string::npos) << wp;

  write(d / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}})");
  const std::string merge = error_of([&] { Tokenizer::load(d); });
  EXPECT_NE(merge.find("model.merges[0]"), std::string::npos) << merge;

  write(d / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "BertPreTokenizer"}})");
  EXPECT_NE(error_of([&] { Tokenizer::load(d); }).find("pre-tokenizer type \"BertPreTokenizer\" is not supported"), std::string::npos);
}

TEST(Tokenizer, tiny_bpe_merges_lowest_rank_first_and_falls_back_to_bytes) {
  const fs::path d = temp_dir("tinybpe");
  // "a b" ranks before "b c": "abc" -> "ab" + "c"; "é" is not in the vocab -> its two bytes.
  write(d / "tokenizer.json", R"({
    "added_tokens": [{"id": 8, "content": "<eos>", "special": true}],
    "model": {"type": "BPE", "byte_fallback": true, "unk_token": null,
              "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "<0xC3>": 5, "<0xA9>": 6, "abc": 7},
              "merges": ["a b", "b c", "ab c"]},
    "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]}})");
  write(d / "tokenizer_config.json", R"({"eos_token": "<eos>", "add_eos_token": true})");
  const Tokenizer tok = Tokenizer::load(d);
  EXPECT_EQ(tok.encode("abc"), (std::vector<int>{7, 8}));
  EXPECT_EQ(tok.encode("bca", false), (std::vector<int>{4, 0}));
  EXPECT_EQ(tok.encode("\xC3\xA9" "a<eos>", false), (std::vector<int>{5, 6, 0, 8}));
  EXPECT_EQ(tok.decode({5, 6, 0, 8}), "\xC3\xA9" "a");
  EXPECT_EQ(tok.decode({5, 0}), "\xEF\xBF\xBD" "a");  // a lone lead byte decodes to U+FFFD
}

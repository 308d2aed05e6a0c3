#include <gtest/gtest.h>

#include "core/utf8.h"

using namespace zephyr;

TEST(Utf8, lossy_replaces_each_maximal_invalid_subpart_like_rust) {
  // Rust: String::from_utf8_lossy(b"a\xF0\x9F\x8E b\xFF\xE2\x82") == "a\u{FFFD} b\u{FFFD}\u{FFFD}"
  EXPECT_EQ(utf8::lossy("a\xF0\x9F\x8E b\xFF\xE2\x82"), "a\xEF\xBF\xBD b\xEF\xBF\xBD\xEF\xBF\xBD");
  // An overlong lead (C0) and a surrogate (ED A0 80) are each invalid byte by byte.
  EXPECT_EQ(utf8::lossy("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8::lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8::lossy("ok \xC3\xA4 \xF0\x9F\x8E\x89"), "ok \xC3\xA4 \xF0\x9F\x8E\x89");
}

TEST(Utf8, find_invalid_names_the_first_bad_byte) {
  EXPECT_EQ(utf8::find_invalid("abc"), std::string_view::npos);
  EXPECT_EQ(utf8::find_invalid("ab\xFF"), 2u);
  EXPECT_EQ(utf8::find_invalid("\xC3\xA4\xC3"), 2u);
}

TEST(Utf8, incomplete_tail_counts_only_unfinished_characters) {
  EXPECT_EQ(utf8::incomplete_tail("a\xF0\x9F\x8E"), 3u);
  EXPECT_EQ(utf8::incomplete_tail("a\xF0\x9F"), 2u);
  EXPECT_EQ(utf8::incomplete_tail("a\xC3"), 1u);
  EXPECT_EQ(utf8::incomplete_tail("a\xF0\x9F\x8E\x89"), 0u);
  EXPECT_EQ(utf8::incomplete_tail("a\xFF"), 0u);  // invalid, not incomplete
  EXPECT_EQ(utf8::incomplete_tail(""), 0u);
}

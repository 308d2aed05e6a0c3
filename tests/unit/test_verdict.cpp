// Judges' replies into verdicts: the structured forms, the bracketed fallbacks, and what is not a
// verdict (never guessed), including replies built to make the readers slow or deep.
#include <gtest/gtest.h>

#include "eval/verdict.h"
#include "feedback/judgment.h"

using namespace zephyr;

TEST(Verdict, SingleRatingFromJsonOrBrackets) {
  EXPECT_EQ(single_rating(R"({"explanation": "fine", "rating": 7})", false), 7);
  EXPECT_EQ(single_rating("Good answer. Rating: [[8.5]]", false), 8.5);
  EXPECT_EQ(single_rating("Rating: [[8]]", true), -1);  // exec judges answer in JSON only
  EXPECT_EQ(single_rating(R"({"rating": 11})", false), -1);
  EXPECT_EQ(single_rating(R"({"rating": "7"})", false), -1);
  EXPECT_EQ(single_rating("[[x]] then [[3]]", false), 3);
  EXPECT_EQ(single_rating("[[0]]", false), -1);
  EXPECT_EQ(single_rating("no verdict", false), -1);
}

TEST(Verdict, PairwiseWinner) {
  EXPECT_EQ(pairwise_winner(R"({"winner": "B"})"), "B");
  EXPECT_EQ(pairwise_winner(R"({"winner": "C"})"), "");  // the schema's names only
  EXPECT_EQ(pairwise_winner("Assistant A is better: [[A]]"), "A");
  EXPECT_EQ(pairwise_winner("[[C]]"), "tie");
  EXPECT_EQ(pairwise_winner("[[D]]"), "");
}

TEST(Verdict, BracketedNumberLooksOnlyNearEachOpening) {
  EXPECT_EQ(bracketed_number("[[7]]"), 7);
  EXPECT_EQ(bracketed_number("[[" + std::string(40, '1') + "]] [[2]]"), 2);  // no number is that long
  // 4 MB of openings and one closing at the end: one pass, not one scan per opening.
  EXPECT_EQ(bracketed_number(std::string(4 << 20, '[') + "5]]"), 5);
  EXPECT_EQ(bracketed_number(std::string(4 << 20, '[') + "x]]"), -1);
}

TEST(Judgment, ScoresFromTheReplyOrTheFirstObjectInIt) {
  ordered_json scores;
  ASSERT_TRUE(parse_judgment(R"({"scores": [{"overall": 7}, {"overall": 3.5}]})", 2, scores));
  EXPECT_EQ(scores[1]["overall"], 3.5);
  ASSERT_TRUE(parse_judgment("Here you go: {\"note\": \"a } in a string\", \"scores\": [{\"overall\": 9}]} done", 1, scores));
  EXPECT_EQ(scores[0]["overall"], 9);
  EXPECT_FALSE(parse_judgment(R"({"scores": [{"overall": 7}]})", 2, scores));   // one per completion
  EXPECT_FALSE(parse_judgment(R"({"scores": [{"overall": 0}]})", 1, scores));   // outside [1, 10]
  EXPECT_FALSE(parse_judgment(R"({"scores": [{"overall": "9"}]})", 1, scores));
  EXPECT_FALSE(parse_judgment("no scores at all", 1, scores));
  // Deep or endless braces are not a verdict, and not a crash.
  EXPECT_FALSE(parse_judgment(std::string(200000, '{') + std::string(200000, '}'), 1, scores));
  EXPECT_FALSE(parse_judgment(std::string(1 << 20, '{'), 1, scores));
}

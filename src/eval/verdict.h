// A judge's reply read into an evaluation verdict — never guessed: the JSON object the verdict
// schema asks for, or, from a judge without structured outputs, MT-Bench's bracketed forms.
#pragma once
#include <string>

namespace zephyr {

// A single-answer grade: {"rating": N}, or (unless json_only, as for exec: judges) "[[N]]" /
// "[[N.5]]" in the text; N in [1, 10], else -1.
double single_rating(const std::string& text, bool json_only);

// A pairwise verdict: {"winner": "A" | "B" | "tie"}, or "[[A]]", "[[B]]", "[[C]]" (a tie) in the
// text; "" when there is none.
std::string pairwise_winner(const std::string& text);

// The first "[[X]]" in the text whose X is a number, or -1. X is looked for within a few bytes
// of each "[[", so a long reply costs one pass.
double bracketed_number(const std::string& text);

}  // namespace zephyr

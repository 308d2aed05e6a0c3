// A judge's reply to the AI-feedback prompt read into scores — never guessed: the reply is the
// JSON object its schema asks for, or (a judge without structured outputs) contains one.
#pragma once
#include <string>

#include "io/json_file.h"

namespace zephyr {

// The reply itself as a JSON object, or else the first balanced {...} in it that parses (among
// its first 64 braces, which bounds a hostile reply's cost); its "scores" must hold n objects
// with a number "overall" in [1, 10]. false when it does not.
bool parse_judgment(const std::string& text, size_t n, ordered_json& scores);

}  // namespace zephyr

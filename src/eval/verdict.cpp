#include "eval/verdict.h"

#include <cstdlib>
#include <optional>
#include <string_view>

#include "io/json_file.h"

namespace zephyr {

double bracketed_number(const std::string& text) {
  constexpr size_t kLongestNumber = 32;
  for (size_t a = text.find("[["); a != std::string::npos; a = text.find("[[", a + 2)) {
    const std::string_view window = std::string_view(text).substr(a + 2, kLongestNumber + 2);
    const size_t b = window.find("]]");
    if (b == std::string_view::npos || b == 0) continue;
    const std::string inner(window.substr(0, b));
    char* end = nullptr;
    const double v = std::strtod(inner.c_str(), &end);
    if (end == inner.c_str() + inner.size()) return v;
  }
  return -1;
}

double single_rating(const std::string& text, bool json_only) {
  double v = -1;
  if (const std::optional<ordered_json> j = try_parse_ordered_json(text)) {
    if (j->is_object() && j->contains("rating") && (*j)["rating"].is_number()) v = (*j)["rating"].get<double>();
  } else if (!json_only) {
    v = bracketed_number(text);
  }
  return v >= 1 && v <= 10 ? v : -1;
}

std::string pairwise_winner(const std::string& text) {
  std::string w;
  if (const std::optional<ordered_json> j = try_parse_ordered_json(text)) {
    if (j->is_object() && j->contains("winner") && (*j)["winner"].is_string()) w = (*j)["winner"].get<std::string>();
  } else if (text.find("[[A]]") != std::string::npos) {
    w = "A";
  } else if (text.find("[[B]]") != std::string::npos) {
    w = "B";
  } else if (text.find("[[C]]") != std::string::npos) {
    w = "tie";
  }
  return w == "A" || w == "B" || w == "tie" ? w : "";
}

}  // namespace zephyr

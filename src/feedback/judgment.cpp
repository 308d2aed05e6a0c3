#include "feedback/judgment.h"

#include <optional>

namespace zephyr {

bool parse_judgment(const std::string& text, size_t n, ordered_json& scores) {
  ordered_json j;
  const auto try_parse = [&](std::string_view s) {
    std::optional<ordered_json> parsed = try_parse_ordered_json(s);
    if (parsed) j = std::move(*parsed);
    return parsed && j.is_object();
  };
  if (!try_parse(text)) {
    bool found = false;
    int tries = 0;
    for (size_t a = text.find('{'); a != std::string::npos && !found && tries < 64; a = text.find('{', a + 1), ++tries)
      if (const size_t b = json_object_end(text, a); b != std::string::npos)
        found = try_parse(std::string_view(text).substr(a, b - a + 1));
    if (!found) return false;
  }
  if (!j.contains("scores") || !j["scores"].is_array() || j["scores"].size() != n) return false;
  for (const auto& s : j["scores"])
    if (!s.is_object() || !s.contains("overall") || !s["overall"].is_number() || s["overall"].get<double>() < 1 ||
        s["overall"].get<double>() > 10)
      return false;
  scores = j["scores"];
  return true;
}

}  // namespace zephyr

#include "tokenizer/pre_tokenizer.h"

#include "core/error.h"
#include "tokenizer/byte_level.h"

namespace zephyr {
namespace {

// GPT-2's own split regex, used by ByteLevel when "use_regex" is true.
const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Span {
  size_t b, e;
  bool match;
};

// Splits `text` into matched / unmatched spans covering it completely.
std::vector<Span> spans_of(const std::string& text, const std::vector<std::pair<size_t, size_t>>& hits) {
  std::vector<Span> spans;
  size_t pos = 0;
  for (auto [b, e] : hits) {
    if (b > pos) spans.push_back({pos, b, false});
    spans.push_back({b, e, true});
    pos = e;
  }
  if (pos < text.size()) spans.push_back({pos, text.size(), false});
  return spans;
}

std::vector<std::pair<size_t, size_t>> find_literal(const std::string& text, const std::string& lit) {
  std::vector<std::pair<size_t, size_t>> hits;
  if (lit.empty()) return hits;
  for (size_t p = 0; (p = text.find(lit, p)) != std::string::npos; p += lit.size())
    hits.emplace_back(p, p + lit.size());
  return hits;
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const json& spec, const std::string& where) {
  PreTokenizer p;
  if (!spec.is_null()) add(spec, where, p.steps_);
  return p;
}

void PreTokenizer::add(const json& spec, const std::string& where, std::vector<Step>& steps) {
  const std::string type = spec.value("type", "");
  Step s{};
  if (type == "Sequence") {
    const auto& list = spec.at("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i)
      add(list[i], where + ".pretokenizers[" + std::to_string(i) + "]", steps);
    return;
  } else if (type == "Split") {
    s.kind = Kind::Split;
    s.pattern = Pattern::from_json(spec.at("pattern"), where + ".pattern");
    const std::string b = spec.value("behavior", "Isolated");
    if (b == "Removed") s.behavior = Behavior::Removed;
    else if (b == "Isolated") s.behavior = Behavior::Isolated;
    else if (b == "MergedWithPrevious") s.behavior = Behavior::MergedWithPrevious;
    else if (b == "MergedWithNext") s.behavior = Behavior::MergedWithNext;
    else if (b == "Contiguous") s.behavior = Behavior::Contiguous;
    else fail(where + ".behavior", "unknown split behavior \"" + b + "\"");
    s.invert = spec.value("invert", false);
  } else if (type == "ByteLevel") {
    s.kind = Kind::ByteLevel;
    s.add_prefix_space = spec.value("add_prefix_space", true);
    s.use_regex = spec.value("use_regex", true);
    if (s.use_regex) s.pattern.regex = std::make_shared<Regex>(kGpt2Pattern);
  } else if (type == "Metaspace") {
    s.kind = Kind::Metaspace;
    s.replacement = spec.value("replacement", "\xE2\x96\x81");
    s.split = spec.value("split", true);
    std::string scheme = spec.value("prepend_scheme", "");
    if (scheme.empty()) scheme = spec.value("add_prefix_space", true) ? "always" : "never";
    if (scheme == "always") s.prepend = Prepend::Always;
    else if (scheme == "first") s.prepend = Prepend::First;
    else if (scheme == "never") s.prepend = Prepend::Never;
    else fail(where + ".prepend_scheme", "unknown scheme \"" + scheme + "\"");
  } else if (type == "Digits") {
    s.kind = Kind::Digits;
    s.individual_digits = spec.value("individual_digits", false);
    s.pattern.regex = std::make_shared<Regex>(s.individual_digits ? "\\p{N}" : "\\p{N}+");
  } else {
    fail(where, "pre-tokenizer type \"" + type + "\" is not supported (supported: Sequence, Split, "
                "ByteLevel, Metaspace, Digits)");
  }
  steps.push_back(std::move(s));
}

void PreTokenizer::split(std::string text, bool first_segment, std::vector<std::string>& words) const {
  std::vector<std::string> pieces;
  pieces.push_back(std::move(text));
  for (const Step& s : steps_) apply(s, pieces, first_segment);
  for (auto& p : pieces)
    if (!p.empty()) words.push_back(std::move(p));
}

void PreTokenizer::apply(const Step& s, std::vector<std::string>& pieces, bool first_segment) {
  std::vector<std::string> out;
  out.reserve(pieces.size());
  for (size_t pi = 0; pi < pieces.size(); ++pi) {
    std::string& text = pieces[pi];
    switch (s.kind) {
      case Kind::ByteLevel: {
        if (s.add_prefix_space && text.rfind(' ', 0) != 0) text.insert(0, " ");
        if (!s.use_regex) {
          out.push_back(byte_level::encode(text));
          break;
        }
        for (auto [b, e] : s.pattern.regex->find_all(text))
          out.push_back(byte_level::encode(std::string_view(text).substr(b, e - b)));
        break;
      }
      case Kind::Metaspace: {
        std::string t = replace_all(text, " ", s.replacement);
        const bool prepend = s.prepend == Prepend::Always || (s.prepend == Prepend::First && first_segment && pi == 0);
        if (prepend && t.rfind(s.replacement, 0) != 0) t.insert(0, s.replacement);
        if (!s.split) {
          out.push_back(std::move(t));
          break;
        }
        // Each word starts at a replacement character (MergedWithNext).
        size_t start = 0;
        for (size_t p = t.find(s.replacement, 1); p != std::string::npos; p = t.find(s.replacement, p + 1)) {
          if (p > start) out.push_back(t.substr(start, p - start));
          start = p;
        }
        out.push_back(t.substr(start));
        break;
      }
      case Kind::Split:
      case Kind::Digits: {
        const auto hits = s.pattern.regex ? s.pattern.regex->find_all(text) : find_literal(text, s.pattern.literal);
        auto spans = spans_of(text, hits);
        if (s.invert)
          for (auto& sp : spans) sp.match = !sp.match;
        const Behavior behavior = s.kind == Kind::Digits ? Behavior::Isolated : s.behavior;
        std::vector<std::string> local;
        bool carry = false;  // MergedWithNext: the previous match joins this piece
        for (size_t i = 0; i < spans.size(); ++i) {
          const Span& sp = spans[i];
          std::string piece = text.substr(sp.b, sp.e - sp.b);
          switch (behavior) {
            case Behavior::Removed:
              if (!sp.match) local.push_back(std::move(piece));
              break;
            case Behavior::Isolated:
              local.push_back(std::move(piece));
              break;
            case Behavior::MergedWithPrevious:
              if (sp.match && !local.empty() && i > 0 && !spans[i - 1].match) local.back() += piece;
              else local.push_back(std::move(piece));
              break;
            case Behavior::MergedWithNext:
              // As HF: a match joins the following piece unless that piece is a match too.
              if (carry) local.back() += piece;
              else local.push_back(std::move(piece));
              carry = sp.match && i + 1 < spans.size() && !spans[i + 1].match;
              break;
            case Behavior::Contiguous:
              if (i > 0 && sp.match && spans[i - 1].match) local.back() += piece;
              else local.push_back(std::move(piece));
              break;
          }
        }
        for (auto& l : local) out.push_back(std::move(l));
        break;
      }
    }
  }
  pieces = std::move(out);
}

}  // namespace zephyr

#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>

#include "core/error.h"
#include "core/utf8.h"

namespace zephyr {
namespace {

std::string unicode_normalize(const std::string& text, int options) {
  // ASCII is invariant under every normalization form; most text is mostly ASCII.
  bool ascii = true;
  for (unsigned char c : text) ascii = ascii && c < 0x80;
  if (ascii) return text;
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                              static_cast<utf8proc_ssize_t>(text.size()), &out,
                              static_cast<utf8proc_option_t>(options));
  if (n < 0) fail("normalizer", utf8proc_errmsg(n));
  std::string result(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

std::string lowercase(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const uint32_t cp = utf8::next_codepoint(text, i);
    utf8::append_codepoint(out, static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
  }
  return out;
}

bool is_space_at(const std::string& s, size_t i, size_t& len) {
  size_t j = i;
  const uint32_t cp = utf8::next_codepoint(s, j);
  len = j - i;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cp == '\t' || cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C ||
         cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP ||
         cp == 0x85;
}

}  // namespace

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(text, pos, hit - pos);
    out += to;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

std::string replace_regex(const std::string& text, const Regex& re, const std::string& to) {
  std::string out;
  size_t pos = 0;
  for (auto [b, e] : re.find_all(text)) {
    out.append(text, pos, b - pos);
    out += to;
    pos = e;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

Pattern Pattern::from_json(const json& spec, const std::string& where) {
  Pattern p;
  if (spec.is_object() && spec.contains("String") && spec["String"].is_string()) {
    p.literal = spec["String"].get<std::string>();
  } else if (spec.is_object() && spec.contains("Regex") && spec["Regex"].is_string()) {
    p.regex = std::make_shared<Regex>(spec["Regex"].get<std::string>());
  } else {
    fail(where, "expected a pattern {\"String\": ...} or {\"Regex\": ...}");
  }
  return p;
}

Normalizer Normalizer::from_json(const json& spec, const std::string& where) {
  Normalizer n;
  if (!spec.is_null()) add(spec, where, n.steps_);
  return n;
}

void Normalizer::add(const json& spec, const std::string& where, std::vector<Step>& steps) {
  const std::string type = spec.value("type", "");
  if (type == "Sequence") {
    const auto& list = spec.at("normalizers");
    for (size_t i = 0; i < list.size(); ++i)
      add(list[i], where + ".normalizers[" + std::to_string(i) + "]", steps);
  } else if (type == "Prepend") {
    steps.push_back({Kind::Prepend, spec.at("prepend").get<std::string>(), "", nullptr});
  } else if (type == "Replace") {
    const Pattern p = Pattern::from_json(spec.at("pattern"), where + ".pattern");
    steps.push_back({Kind::Replace, p.literal, spec.at("content").get<std::string>(), p.regex});
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    const Kind k = type == "NFC" ? Kind::NFC : type == "NFD" ? Kind::NFD : type == "NFKC" ? Kind::NFKC : Kind::NFKD;
    steps.push_back({k, "", "", nullptr});
  } else if (type == "Lowercase") {
    steps.push_back({Kind::Lowercase, "", "", nullptr});
  } else if (type == "Strip") {
    Step s{Kind::Strip, "", "", nullptr};
    s.left = spec.value("strip_left", true);
    s.right = spec.value("strip_right", true);
    steps.push_back(s);
  } else {
    fail(where, "normalizer type \"" + type + "\" is not supported (supported: Sequence, Prepend, "
                "Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip)");
  }
}

void Normalizer::apply(std::string& text) const {
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Kind::Prepend:
        if (!text.empty()) text.insert(0, s.a);  // HF prepends only to non-empty text
        break;
      case Kind::Replace:
        text = s.regex ? replace_regex(text, *s.regex, s.b) : replace_all(text, s.a, s.b);
        break;
      case Kind::NFC: text = unicode_normalize(text, UTF8PROC_STABLE | UTF8PROC_COMPOSE); break;
      case Kind::NFD: text = unicode_normalize(text, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE); break;
      case Kind::NFKC:
        text = unicode_normalize(text, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
        break;
      case Kind::NFKD:
        text = unicode_normalize(text, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
        break;
      case Kind::Lowercase: text = lowercase(text); break;
      case Kind::Strip: {
        size_t b = 0, e = text.size(), len = 0;
        if (s.left)
          while (b < e && is_space_at(text, b, len)) b += len;
        if (s.right) {
          // Walk forward to find where the trailing whitespace run starts.
          size_t run = e;
          for (size_t i = b; i < e;) {
            if (is_space_at(text, i, len)) {
              if (run == e) run = i;
            } else {
              run = e;
            }
            i += len;
          }
          e = run;
        }
        text = text.substr(b, e - b);
        break;
      }
    }
  }
}

}  // namespace zephyr

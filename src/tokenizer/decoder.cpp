#include "tokenizer/decoder.h"

#include "core/error.h"
#include "core/utf8.h"
#include "tokenizer/byte_level.h"

namespace zephyr {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "<0x0A>" -> 10, anything else -> -1.
int byte_token(const std::string& t) {
  if (t.size() != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>') return -1;
  const int hi = hex_digit(t[3]), lo = hex_digit(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::vector<std::string> byte_fallback(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  std::string bytes;
  size_t count = 0;
  auto flush = [&] {
    if (count == 0) return;
    if (utf8::find_invalid(bytes) == std::string::npos) {
      out.push_back(bytes);
    } else {
      // HF emits one replacement character per byte of an invalid run.
      std::string rep;
      for (size_t i = 0; i < count; ++i) rep += utf8::kReplacementChar;
      out.push_back(rep);
    }
    bytes.clear();
    count = 0;
  };
  for (auto& t : tokens) {
    const int b = byte_token(t);
    if (b >= 0) {
      bytes += static_cast<char>(b);
      ++count;
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  return out;
}

void strip(std::string& t, const std::string& c, int start, int stop) {
  for (int i = 0; i < start && !c.empty() && t.rfind(c, 0) == 0; ++i) t.erase(0, c.size());
  for (int i = 0; i < stop && !c.empty() && t.size() >= c.size() && t.compare(t.size() - c.size(), c.size(), c) == 0; ++i)
    t.erase(t.size() - c.size());
}

}  // namespace

Decoder Decoder::from_json(const json& spec, const std::string& where) {
  Decoder d;
  if (!spec.is_null()) add(spec, where, d.steps_);
  return d;
}

void Decoder::add(const json& spec, const std::string& where, std::vector<Step>& steps) {
  const std::string type = spec.value("type", "");
  Step s{};
  if (type == "Sequence") {
    const auto& list = spec.at("decoders");
    for (size_t i = 0; i < list.size(); ++i) add(list[i], where + ".decoders[" + std::to_string(i) + "]", steps);
    return;
  } else if (type == "Replace") {
    s.kind = Kind::Replace;
    s.pattern = Pattern::from_json(spec.at("pattern"), where + ".pattern");
    s.content = spec.at("content").get<std::string>();
  } else if (type == "ByteFallback") {
    s.kind = Kind::ByteFallback;
  } else if (type == "Fuse") {
    s.kind = Kind::Fuse;
  } else if (type == "Strip") {
    s.kind = Kind::Strip;
    s.content = spec.value("content", " ");
    // Counts of characters: an integer in range (a float like 3e22 converted to int is undefined).
    auto count = [&](const char* key) {
      if (!spec.contains(key)) return 0;
      const std::optional<int> n = json_int(spec[key]);
      if (!n || *n < 0) fail(where, std::string("Strip \"") + key + "\": expected a non-negative integer, got " + spec[key].dump());
      return *n;
    };
    s.start = count("start");
    s.stop = count("stop");
  } else if (type == "ByteLevel") {
    s.kind = Kind::ByteLevel;
  } else if (type == "Metaspace") {
    s.kind = Kind::Metaspace;
    s.content = spec.value("replacement", "\xE2\x96\x81");
    std::string scheme = spec.value("prepend_scheme", "");
    s.prepend = scheme.empty() ? spec.value("add_prefix_space", true) : scheme != "never";
  } else {
    fail(where, "decoder type \"" + type + "\" is not supported (supported: Sequence, Replace, "
                "ByteFallback, Fuse, Strip, ByteLevel, Metaspace)");
  }
  steps.push_back(std::move(s));
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Kind::Replace:
        for (auto& t : tokens)
          t = s.pattern.regex ? replace_regex(t, *s.pattern.regex, s.content) : replace_all(t, s.pattern.literal, s.content);
        break;
      case Kind::ByteFallback:
        tokens = byte_fallback(std::move(tokens));
        break;
      case Kind::Fuse: {
        std::string all;
        for (auto& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case Kind::Strip:
        for (auto& t : tokens) strip(t, s.content, s.start, s.stop);
        break;
      case Kind::ByteLevel: {
        // A token made only of stand-in characters becomes its bytes; any other keeps its own.
        std::string bytes;
        for (auto& t : tokens) {
          const size_t mark = bytes.size();
          if (!byte_level::decode(t, bytes)) {
            bytes.resize(mark);
            bytes += t;
          }
        }
        tokens.assign(1, utf8::lossy(bytes));
        break;
      }
      case Kind::Metaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          tokens[i] = replace_all(tokens[i], s.content, " ");
          if (i == 0 && s.prepend && tokens[i].rfind(' ', 0) == 0) tokens[i].erase(0, 1);
        }
        break;
    }
  }
  std::string out;
  for (auto& t : tokens) out += t;
  return out;
}

std::string Decoder::token_bytes(const std::string& token) const {
  std::string t = token;
  bool fused = false;
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Kind::Replace: t = s.pattern.regex ? replace_regex(t, *s.pattern.regex, s.content) : replace_all(t, s.pattern.literal, s.content); break;
      case Kind::ByteFallback:
        if (const int b = byte_token(t); b >= 0) t = std::string(1, char(b));
        break;
      case Kind::Fuse: fused = true; break;
      case Kind::Strip:  // after Fuse it strips the start and end of the whole text only
        if (!fused) strip(t, s.content, s.start, s.stop);
        break;
      case Kind::ByteLevel: {
        std::string bytes;
        if (byte_level::decode(t, bytes)) t = std::move(bytes);
        break;
      }
      case Kind::Metaspace: t = replace_all(t, s.content, " "); break;
    }
  }
  return t;
}

}  // namespace zephyr

#include "tokenizer/byte_level.h"

#include "core/utf8.h"

namespace zephyr::byte_level {
namespace {

struct Tables {
  std::array<std::string, 256> to_char;
  std::array<int, 512> from_cp{};  // stand-in code points are all below 512
  Tables() {
    from_cp.fill(-1);
    // Printable Latin-1 bytes stand for themselves; the rest map to 256, 257, ... in order.
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const int cp = printable ? b : next++;
      utf8::append_codepoint(to_char[b], static_cast<uint32_t>(cp));
      from_cp[cp] = b;
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

const std::array<std::string, 256>& byte_to_char() { return tables().to_char; }

std::string encode(std::string_view bytes) {
  const auto& t = tables().to_char;
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) out += t[c];
  return out;
}

bool decode(std::string_view chars, std::string& out) {
  const auto& t = tables().from_cp;
  for (size_t i = 0; i < chars.size();) {
    if (utf8::valid_char_len(chars, i) == 0) return false;
    const uint32_t cp = utf8::next_codepoint(chars, i);
    if (cp >= t.size() || t[cp] < 0) return false;
    out += static_cast<char>(t[cp]);
  }
  return true;
}

}  // namespace zephyr::byte_level

#include "core/utf8.h"

namespace zephyr::utf8 {
namespace {

// Number of bytes a sequence with this lead byte has, or 0 for a byte that cannot lead one.
size_t lead_len(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

// Valid range of the second byte given the lead byte (RFC 3629 table), which excludes
// overlong forms, surrogates and code points above U+10FFFF.
bool second_ok(unsigned char lead, unsigned char c) {
  switch (lead) {
    case 0xE0: return c >= 0xA0 && c <= 0xBF;
    case 0xED: return c >= 0x80 && c <= 0x9F;
    case 0xF0: return c >= 0x90 && c <= 0xBF;
    case 0xF4: return c >= 0x80 && c <= 0x8F;
    default: return c >= 0x80 && c <= 0xBF;
  }
}

// How many bytes of s starting at i form a valid prefix of the sequence the lead byte
// promises (at least 1 when the lead byte itself is valid).
size_t valid_prefix(std::string_view s, size_t i, size_t need) {
  const auto lead = static_cast<unsigned char>(s[i]);
  size_t k = 1;
  while (k < need && i + k < s.size()) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? !second_ok(lead, c) : (c & 0xC0) != 0x80) break;
    ++k;
  }
  return k;
}

}  // namespace

size_t valid_char_len(std::string_view s, size_t i) {
  const size_t need = lead_len(static_cast<unsigned char>(s[i]));
  if (need <= 1) return need;
  return valid_prefix(s, i, need) == need ? need : 0;
}

size_t find_invalid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) { ++i; continue; }
    const size_t n = valid_char_len(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

uint32_t next_codepoint(std::string_view s, size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const size_t n = lead_len(c);
  if (n <= 1) { ++i; return c; }
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

void append_codepoint(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) { out += static_cast<char>(c); ++i; continue; }
    const size_t need = lead_len(c);
    if (need == 0) { out += kReplacementChar; ++i; continue; }
    const size_t k = valid_prefix(s, i, need);
    if (k == need) {
      out.append(s.substr(i, need));
    } else {
      out += kReplacementChar;
    }
    i += k;
  }
  return out;
}

size_t incomplete_tail(std::string_view s) {
  // A character is at most 4 bytes, so only the last 3 can start an unfinished one.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const size_t i = s.size() - back;
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const size_t need = lead_len(c);
    return (need > back && valid_prefix(s, i, need) == back) ? back : 0;
  }
  return 0;
}

}  // namespace zephyr::utf8

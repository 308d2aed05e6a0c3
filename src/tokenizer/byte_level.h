// GPT-2's reversible byte <-> printable-character map used by ByteLevel pre-tokenizers/decoders.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace zephyr::byte_level {

// The UTF-8 string of the character that stands for each byte.
const std::array<std::string, 256>& byte_to_char();

// Maps every byte of `bytes` to its stand-in character.
std::string encode(std::string_view bytes);

// Maps stand-in characters back to bytes. Returns false (leaving `out` unspecified) when a
// character is not a stand-in, so the caller can keep the token's own bytes instead.
bool decode(std::string_view chars, std::string& out);

}  // namespace zephyr::byte_level

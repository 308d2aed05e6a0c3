// UTF-8 helpers shared by the tokenizer, the chat templates and the CLI.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace zephyr::utf8 {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if the bytes there are not one.
size_t valid_char_len(std::string_view s, size_t i);

// Byte offset of the first invalid sequence, or npos if all of s is valid UTF-8.
size_t find_invalid(std::string_view s);

// Decodes one code point at s[i] (must be valid) and advances i.
uint32_t next_codepoint(std::string_view s, size_t& i);

void append_codepoint(std::string& out, uint32_t cp);

// Replaces every maximal invalid subsequence with U+FFFD, as Rust's String::from_utf8_lossy.
std::string lossy(std::string_view bytes);

// Number of trailing bytes that begin a UTF-8 character but do not complete it yet.
size_t incomplete_tail(std::string_view s);

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

}  // namespace zephyr::utf8

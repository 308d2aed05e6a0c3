// Reading whole files and JSON documents with errors that name the file and the byte.
#pragma once
#include <filesystem>
#include <functional>
#include <istream>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include <string>
#include <string_view>

namespace zephyr {

using json = nlohmann::json;
// For data that templates see (chat messages): Python dicts keep insertion order, and so must we.
// Not for big documents: its object insertion is linear, so a 100k-entry vocab would be quadratic.
using ordered_json = nlohmann::ordered_json;

std::string read_file(const std::filesystem::path& path);

// Parses a JSON file; a syntax error names the file and the byte offset.
json read_json_file(const std::filesystem::path& path);

// Deeper nesting is refused before parsing: whatever walks a JSON value (dump, comparisons, the
// templates' conversion, schema compilation) recurses once per level, so 100k brackets in any
// field, even one nothing reads, would overflow the stack. Real documents stay far below this.
constexpr int kMaxJsonDepth = 512;
// The byte offset where TEXT's nesting first exceeds kMaxJsonDepth (brackets in strings do not
// count), or npos.
size_t json_depth_overflow(std::string_view text);
// The '}' that closes the '{' at OPEN (braces in strings do not count), or npos: where a JSON
// object inside free text (a judge's reply) ends.
size_t json_object_end(std::string_view text, size_t open);

// A JSON integer that fits an int (a token id, a label), else nullopt: get<int>() would read
// 2^32 + 5 as 5, another token.
template <class J>
std::optional<int> json_int(const J& v) {
  if (!v.is_number_integer()) return std::nullopt;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.template get<uint64_t>();
    return u <= uint64_t(INT32_MAX) ? std::optional<int>(int(u)) : std::nullopt;
  }
  const int64_t i = v.template get<int64_t>();
  return i >= INT32_MIN && i <= INT32_MAX ? std::optional<int>(int(i)) : std::nullopt;
}

// Parses JSON text; any failure, a syntax error (with its byte), nesting beyond kMaxJsonDepth or a
// number beyond double's range, is an Error "WHERE: ..." — never the library's own exception.
json parse_json(std::string_view text, const std::string& where);
ordered_json parse_ordered_json(std::string_view text, const std::string& where);
// For text that may or may not be JSON (a judge's or a server's reply): nullopt where parse_json fails.
std::optional<json> try_parse_json(std::string_view text);
std::optional<ordered_json> try_parse_ordered_json(std::string_view text);
// A JSON library exception's message without its "[json.exception.…] " prefix.
std::string json_error_text(const std::exception& e);

// Writes to PATH.tmp and renames, so readers never see a half-written file; a failed write removes
// the temp file.
void write_file_atomic(const std::filesystem::path& path, const std::string& contents);
// Refuses an OUTPUT that names INPUT (also by another spelling, a symlink or a hard link): writing
// it would destroy what is being read.
void refuse_output_over_input(const std::filesystem::path& output, const std::filesystem::path& input);

// Renames a finished TMP over PATH durably: TMP's data reaches the disk first (fsync), then the
// rename, then the directory entry (fsync of the directory), so a power cut leaves the old file or
// the whole new one — a SIGKILL alone needs only the rename.
void commit_file(const std::filesystem::path& tmp, const std::filesystem::path& path);

}  // namespace zephyr

namespace zephyr {

// Calls fn(value, line_number) for each non-blank line of a JSONL stream. A line that is not
// valid JSON (or not UTF-8) throws Error "NAME:LINE: ...".
// With on_error, a line's error (the same message) goes to it and reading goes on.
void for_each_jsonl(std::istream& in, const std::string& name,
                    const std::function<void(const ordered_json&, size_t)>& fn,
                    const std::function<void(const Error&)>& on_error = nullptr);

// One-line JSON for output, never throwing on odd bytes.
std::string to_json_line(const ordered_json& value);

}  // namespace zephyr

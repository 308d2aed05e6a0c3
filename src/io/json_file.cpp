#include "io/json_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace zephyr {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(path.string(), "read error");
  return ss.str();
}

std::string json_error_text(const std::exception& e) {
  const std::string w = e.what();
  const size_t close = w.rfind("] ", w.find(']') == std::string::npos ? 0 : w.find(']'));
  return w.rfind("[json.exception", 0) == 0 && close != std::string::npos ? w.substr(close + 2) : w;
}

namespace {
// Calls at(c) for each bracket of TEXT from FROM on that is outside a string literal (escapes
// in strings skipped) until it returns true; that offset, or npos.
template <class Fn>
size_t find_bracket(std::string_view text, size_t from, Fn&& at) {
  bool in_string = false;
  for (size_t i = from; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if ((c == '[' || c == '{' || c == ']' || c == '}') && at(c)) {
      return i;
    }
  }
  return std::string_view::npos;
}
}  // namespace

size_t json_depth_overflow(std::string_view text) {
  int depth = 0;
  return find_bracket(text, 0, [&](char c) { return (c == '[' || c == '{') ? ++depth > kMaxJsonDepth : (--depth, false); });
}

size_t json_object_end(std::string_view text, size_t open) {
  int depth = 0;
  return find_bracket(text, open, [&](char c) { return c == '{' ? (++depth, false) : c == '}' && --depth == 0; });
}

namespace {
template <class J>
J parse_any(std::string_view text, const std::string& where) {
  if (const size_t at = json_depth_overflow(text); at != std::string_view::npos)
    fail(where, "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels at byte " + std::to_string(at));
  try {
    return J::parse(text);
  } catch (const typename J::parse_error& e) {
    fail(where, "invalid JSON at byte " + std::to_string(e.byte) + ": " + json_error_text(e));
  } catch (const typename J::exception& e) {  // e.g. a number beyond double's range
    fail(where, "unusable JSON: " + json_error_text(e));
  }
}
}  // namespace

json parse_json(std::string_view text, const std::string& where) { return parse_any<json>(text, where); }
ordered_json parse_ordered_json(std::string_view text, const std::string& where) { return parse_any<ordered_json>(text, where); }

std::optional<json> try_parse_json(std::string_view text) {
  try {
    return parse_any<json>(text, "");
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::optional<ordered_json> try_parse_ordered_json(std::string_view text) {
  try {
    return parse_any<ordered_json>(text, "");
  } catch (const Error&) {
    return std::nullopt;
  }
}

json read_json_file(const std::filesystem::path& path) { return parse_json(read_file(path), path.string()); }

void refuse_output_over_input(const std::filesystem::path& output, const std::filesystem::path& input) {
  std::error_code ec;
  const bool same = std::filesystem::exists(output, ec) ? std::filesystem::equivalent(output, input, ec)
                                                        : std::filesystem::weakly_canonical(output, ec) == std::filesystem::weakly_canonical(input, ec);
  if (same) fail(output.string(), "is also the input " + input.string() + "; write the output elsewhere");
}

void commit_file(const std::filesystem::path& tmp, const std::filesystem::path& path) {
  auto sync = [](const std::filesystem::path& p, int flags) {
    const int fd = ::open(p.c_str(), flags);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
  };
  if (!sync(tmp, O_RDONLY)) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    fail(tmp.string(), std::string("cannot sync to disk: ") + std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(path.string(), "cannot rename from " + tmp.string() + ": " + ec.message());
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  sync(dir, O_RDONLY | O_DIRECTORY);  // best effort: some filesystems refuse to sync a directory
}

void write_file_atomic(const std::filesystem::path& path, const std::string& contents) {
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(tmp.string(), std::string("cannot create: ") + std::strerror(errno));
    out << contents;
    out.flush();
    if (!out) {
      out.close();
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      fail(tmp.string(), "write error (disk full?)");
    }
  }
  commit_file(tmp, path);
}

}  // namespace zephyr

namespace zephyr {

void for_each_jsonl(std::istream& in, const std::string& name,
                    const std::function<void(const ordered_json&, size_t)>& fn,
                    const std::function<void(const Error&)>& on_error) {
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = name + ":" + std::to_string(n);
    try {
      const ordered_json value = parse_ordered_json(line, where);
      try {
        fn(value, n);
      } catch (const Error& e) {
        fail(where, e.what());
      } catch (const json::exception& e) {
        fail(where, json_error_text(e));
      }
    } catch (const Error& e) {
      if (!on_error) throw;
      on_error(e);
    }
  }
}

std::string to_json_line(const ordered_json& value) {
  return value.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

}  // namespace zephyr

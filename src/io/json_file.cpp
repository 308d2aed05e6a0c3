#include "io/json_file.h"

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

json read_json_file(const std::filesystem::path& path) {
  const std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    fail(path.string(), "invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  }
}

void write_file_atomic(const std::filesystem::path& path, const std::string& contents) {
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(tmp.string(), std::string("cannot create: ") + std::strerror(errno));
    out << contents;
    out.flush();
    if (!out) fail(tmp.string(), "write error");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(path.string(), "cannot rename from " + tmp.string() + ": " + ec.message());
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
      ordered_json value;
      try {
        value = ordered_json::parse(line);
      } catch (const json::parse_error& e) {
        fail(where, std::string("invalid JSON at byte ") + std::to_string(e.byte) + ": " + e.what());
      }
      try {
        fn(value, n);
      } catch (const Error& e) {
        fail(where, e.what());
      } catch (const json::exception& e) {
        fail(where, e.what());
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

#include "feedback/work.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace zephyr {

std::string line_of(const ordered_json& row) { return row.dump(-1, ' ', false, ordered_json::error_handler_t::replace) + "\n"; }

ResumableJsonl::ResumableJsonl(const std::string& path, const std::function<void(const ordered_json&)>& existing) : path_(path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::string text = read_file(path);
    const size_t end = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    if (end < text.size()) std::filesystem::resize_file(path, end);  // the row being written when it stopped
    text.resize(end);
    size_t line = 0;
    for (size_t i = 0; i < text.size();) {
      const size_t nl = text.find('\n', i);
      ++line;
      const std::string l = text.substr(i, nl - i);
      i = nl + 1;
      if (l.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::optional<ordered_json> row = try_parse_ordered_json(l);
      try {
        if (row) existing(*row);
      } catch (const ordered_json::exception&) {
      }
      if (!row) fail(path + ":" + std::to_string(line), "not a JSON row (is this the output of an earlier run of the same command?)");
    }
  }
  f_ = std::fopen(path.c_str(), "ab");
  if (!f_) fail(path, std::string("cannot open for appending: ") + std::strerror(errno));
}

ResumableJsonl::~ResumableJsonl() {
  if (f_) std::fclose(f_);
}

void ResumableJsonl::append(const ordered_json& row) {
  const std::string l = line_of(row);
  std::lock_guard<std::mutex> lock(mu_);
  if (std::fwrite(l.data(), 1, l.size(), f_) != l.size() || std::fflush(f_) != 0) fail(path_, "write error");
}

Progress::Progress(std::string what, int64_t total)
    : what_(std::move(what)), total_(total), tty_(::isatty(2)), t0_(std::chrono::steady_clock::now()) {}

void Progress::step(int64_t tokens, bool failed, int retries) {
  std::lock_guard<std::mutex> lock(mu_);
  done_ += 1, tokens_ += tokens, failed_ += failed, retries_ += retries;
  const auto now = std::chrono::steady_clock::now();
  if (done_ < total_ && now - last_ < std::chrono::milliseconds(tty_ ? 200 : 5000)) return;
  last_ = now;
  const double s = std::chrono::duration<double>(now - t0_).count();
  const double eta = done_ > 0 ? s / double(done_) * double(total_ - done_) : 0;
  const int width = 24, fill = total_ ? int(width * done_ / total_) : width;
  std::fprintf(stderr, "%s%s [%s%s] %lld/%lld, %lld failed, %lld retries, %.1f tok/s, ETA %.0f s%s", tty_ ? "\r" : "", what_.c_str(),
               std::string(size_t(fill), '#').c_str(), std::string(size_t(width - fill), '.').c_str(), (long long)done_, (long long)total_,
               (long long)failed_, (long long)retries_, s > 0 ? double(tokens_) / s : 0.0, eta, tty_ ? "\x1b[K" : "\n");
  if (tty_ && done_ == total_) std::fputc('\n', stderr);
}

}  // namespace zephyr

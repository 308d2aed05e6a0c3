#include "cli/line_reader.h"

#include <editline/readline.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

namespace zephyr::cli {

namespace {

// True when more input is already waiting: the rest of a paste, not a line typed after Enter.
bool input_pending() {
  pollfd p{STDIN_FILENO, POLLIN, 0};
  return poll(&p, 1, 20) > 0 && (p.revents & POLLIN);
}

}  // namespace

LineReader::LineReader() : tty_(isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
  if (!tty_) return;
  using_history();
  stifle_history(1000);
  if (const char* home = std::getenv("HOME")) {
    history_file_ = std::string(home) + "/.zephyr_history";
    read_history(history_file_.c_str());
  }
}

LineReader::~LineReader() {
  if (tty_ && !history_file_.empty()) write_history(history_file_.c_str());
}

std::optional<std::string> LineReader::read_line(const char* prompt) {
  if (!tty_) {
    std::string line;
    if (!std::getline(std::cin, line)) return std::nullopt;
    return line;
  }
  char* raw = readline(prompt);
  if (!raw) return std::nullopt;
  std::string line(raw);
  std::free(raw);
  return line;
}

std::optional<std::string> LineReader::read(const char* prompt) {
  std::optional<std::string> line = read_line(prompt);
  if (!line) return std::nullopt;
  std::string message = *line;
  while (true) {
    const bool continued = !message.empty() && message.back() == '\\';
    if (!continued && !(tty_ && input_pending())) break;
    if (continued) message.pop_back();
    std::optional<std::string> more = read_line(tty_ ? "… " : "");
    if (!more) break;
    message += "\n" + *more;
  }
  if (tty_ && !message.empty()) add_history(message.c_str());
  return message;
}

}  // namespace zephyr::cli

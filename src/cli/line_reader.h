// Reading the chat's input: on a terminal through libedit (arrow keys, history kept in
// ~/.zephyr_history, Ctrl-R search), elsewhere plain lines. One message may span lines: a line
// ending in '\' continues, and on a terminal lines pasted at once arrive as one message.
#pragma once
#include <optional>
#include <string>

namespace zephyr::cli {

class LineReader {
 public:
  LineReader();
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  bool interactive() const { return tty_; }
  // The next message, its lines joined with '\n'; nullopt at end of input (Ctrl-D).
  std::optional<std::string> read(const char* prompt);

 private:
  std::optional<std::string> read_line(const char* prompt);
  bool tty_;
  std::string history_file_;
};

}  // namespace zephyr::cli

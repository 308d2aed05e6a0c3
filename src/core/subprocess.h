// Child programs talked to over pipes (the exec: filters, models and judges).
#pragma once
#include <sys/types.h>

#include <string>

namespace zephyr {

struct PipedChild {
  pid_t pid = -1;
  int to = -1;    // its stdin
  int from = -1;  // its stdout
};

// Starts `path` (no arguments) with its stdin and stdout on pipes, stderr shared; SIGPIPE is
// ignored from then on, so a child that exits early is an error on write, not our end. false
// with `error` when it cannot start.
bool spawn_piped(const std::string& path, PipedChild& child, std::string& error);

}  // namespace zephyr

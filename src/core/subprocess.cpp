#include "core/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace zephyr {

bool spawn_piped(const std::string& path, PipedChild& child, std::string& error) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return error = std::strerror(errno), false;
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]), ::close(in[1]);
    return error = std::strerror(errno), false;
  }
  ::signal(SIGPIPE, SIG_IGN);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  char* argv[] = {const_cast<char*>(path.c_str()), nullptr};
  const int rc = posix_spawn(&child.pid, path.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  if (rc != 0) {
    ::close(in[1]), ::close(out[0]);
    child = PipedChild();
    return error = "cannot start " + path + ": " + std::strerror(rc), false;
  }
  child.to = in[1];
  child.from = out[0];
  return true;
}

}  // namespace zephyr

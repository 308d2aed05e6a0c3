// relaunch_with_huge_page_heap: the program runs again with glibc's huge-page tunable set, once,
// and not at all when the variable already names that tunable.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/huge_buffer.h"

using namespace zephyr;

namespace {

bool thp_available() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode;
  std::getline(f, mode);
  return !mode.empty() && mode.find("[never]") == std::string::npos;
}

// Runs relaunch_with_huge_page_heap in a child with GLIBC_TUNABLES = `tunables` (null: unset),
// relaunching this test binary as ReportsTheTunablesItRunsWith; returns what the child printed:
// the tunables the relaunched program saw, or "returned" when the call came back.
std::string child_output(const char* tunables) {
  int fds[2];
  if (pipe(fds) != 0) return "no pipe";
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    if (tunables) setenv("GLIBC_TUNABLES", tunables, 1);
    else unsetenv("GLIBC_TUNABLES");
    setenv("ZEPHYR_TEST_REPORT_TUNABLES", "1", 1);
    char self[] = "/proc/self/exe", filter[] = "--gtest_filter=HugePages.ReportsTheTunablesItRunsWith";
    char* args[] = {self, filter, nullptr};
    relaunch_with_huge_page_heap(args);
    std::printf("returned\n");
    std::fflush(stdout);
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[256];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return out;
}

}  // namespace

// What the relaunched binary runs (and only then prints).
TEST(HugePages, ReportsTheTunablesItRunsWith) {
  if (!std::getenv("ZEPHYR_TEST_REPORT_TUNABLES")) GTEST_SKIP() << "run by RelaunchSetsGlibcsHugePageTunableOnce";
  const char* t = std::getenv("GLIBC_TUNABLES");
  std::printf("TUNABLES=[%s]\n", t ? t : "");
}

TEST(HugePages, RelaunchSetsGlibcsHugePageTunableOnce) {
  if (!thp_available()) GTEST_SKIP() << "transparent huge pages are off";
  EXPECT_NE(child_output(nullptr).find("TUNABLES=[glibc.malloc.hugetlb=1]"), std::string::npos);
  // Other tunables are kept.
  EXPECT_NE(child_output("glibc.malloc.arena_max=2").find("TUNABLES=[glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1]"),
            std::string::npos);
  // Named already (by the relaunch, or by a user turning it off): no second run.
  EXPECT_EQ(child_output("glibc.malloc.hugetlb=0"), "returned\n");
  EXPECT_EQ(child_output("glibc.malloc.hugetlb=1"), "returned\n");
}

// parallel_for_balanced: every index runs exactly once, in pieces that start on a multiple of the
// grain, and a thread that finishes early takes over part of a slow thread's share.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "core/parallel.h"

using namespace zephyr;

namespace {
struct ThreadsFor {
  int saved = num_threads();
  explicit ThreadsFor(int n) { set_num_threads(n); }
  ~ThreadsFor() { set_num_threads(saved); }
};
}  // namespace

TEST(ParallelForBalanced, CoversEveryIndexOnceInGrainAlignedPieces) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadsFor use(threads);
    for (size_t n : {size_t(0), size_t(1), size_t(15), size_t(16), size_t(17), size_t(1000), size_t(4096), size_t(14336)}) {
      for (size_t grain : {size_t(1), size_t(8), size_t(16)}) {
        std::vector<std::atomic<int>> hits(n);
        std::atomic<bool> misaligned{false};
        parallel_for_balanced(n, grain, [&](size_t b, size_t e) {
          if (b % grain != 0 || (b >= e && n > 0) || e > n) misaligned = true;
          for (size_t i = b; i < e; ++i) hits[i]++;
        });
        EXPECT_FALSE(misaligned) << threads << " threads, n " << n << ", grain " << grain;
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " threads, n " << n << ", grain " << grain << ", index " << i;
      }
    }
  }
}

TEST(ParallelForBalanced, AnIdleThreadTakesOverTheEndOfASlowShare) {
  ThreadsFor use(2);
  const size_t n = 64 * 16;
  std::vector<std::thread::id> ran_on(n);
  std::atomic<bool> stalled{false};
  parallel_for_balanced(n, 16, [&](size_t b, size_t e) {
    // Every block takes 1 ms, so both threads are at work before either share runs out; the piece
    // holding index 0 takes 300 ms more, so the other thread finishes its own share and must take
    // the rest of this one.
    std::this_thread::sleep_for(std::chrono::milliseconds((e - b) / 16));
    if (b == 0 && !stalled.exchange(true)) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    for (size_t i = b; i < e; ++i) ran_on[i] = std::this_thread::get_id();
  });
  EXPECT_NE(ran_on[n / 2 - 1], ran_on[0]) << "the end of the stalled share waited for its own thread";
}

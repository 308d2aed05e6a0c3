// parallel_for_balanced: every index runs exactly once, in pieces that start on a multiple of the
// grain, and a thread that finishes early takes over part of a slow thread's share; the pool runs
// loops on the caller alone for a while once its workers keep stalling it (contended cores).
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

// A worker held off its core in the middle of a loop (here: asleep) makes the caller wait far
// longer than its own share took; after two such loops the caller runs the next loops alone
// (the cores are contended), and a while later hands slots to the workers again.
TEST(Pool, AfterTwoStalledLoopsTheCallerRunsAloneForAWhile) {
  ThreadsFor use(2);
  const std::thread::id caller = std::this_thread::get_id();
  // Both slots start (the caller's waits for the other's start), the worker's then sleeps.
  auto loop = [&](std::chrono::milliseconds worker_sleep) {
    std::atomic<int> started{0};
    std::atomic<bool> worker_ran{false};
    detail::run_slots(2, [&](size_t) {
      started.fetch_add(1);
      if (std::this_thread::get_id() != caller) {
        worker_ran = true;
        std::this_thread::sleep_for(worker_sleep);
        return;
      }
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      while (started.load() < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    });
    return worker_ran.load();
  };
  // Up to three tries, each after a pause that lets earlier stalls age out (an earlier test's slow
  // share is one): the two stalls must end within the pool's 50 ms window, and on a loaded
  // machine (ctest runs other tests beside this one) a late worker can stretch a loop past it.
  bool solo = false;
  for (int attempt = 0; attempt < 3 && !solo; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    if (loop(std::chrono::milliseconds(20)) && loop(std::chrono::milliseconds(20))) solo = !loop(std::chrono::milliseconds(0));
  }
  EXPECT_TRUE(solo) << "the loop after two stalled ones should have run on the caller alone";
  bool back = false;
  for (int attempt = 0; attempt < 3 && !back; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    back = loop(std::chrono::milliseconds(0));
  }
  EXPECT_TRUE(back) << "the workers take slots again after the solo period";
}

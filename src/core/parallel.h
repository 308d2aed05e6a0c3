// Thread-count control and parallel loops on zephyr's own pool. Why not OpenMP's parallel for:
// its end barrier waits for every thread of the team, so on a machine shared with other work (a
// server beside its clients, two processes on two cores) one descheduled worker stalls each of the
// ~200 loops of a decode step for a time slice. Here a loop's pieces ("slots") go to whichever
// thread claims them first, the caller included, and the caller waits only for pieces in progress,
// never for a thread that has not started; when workers keep being taken off their cores in the
// middle of a piece, the caller runs the loops alone for a while (parallel.cpp, Pool::note_wait).
// OpenBLAS keeps its own OpenMP threads for GEMMs. A loop run on the pool fences each thread's
// streaming (non-temporal) stores before it returns (gemm_bf16.h: Bf16Write::kStream); code that
// streams in a loop run inline calls fence_streams() itself.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace zephyr {

// Sets the threads used by kernels and BLAS; 0 means OMP_NUM_THREADS when set, else all cores.
void set_num_threads(int n);
int num_threads();

// Makes the calling thread's streaming stores visible to other threads before its later stores
// (sfence). Loops run on the pool do this for their slots; a loop run inline (one thread, a short
// loop, a loop nested in a task) does not, so code that streams calls it once it is done.
void fence_streams();

namespace detail {
// Runs task(s) once for every s in [0, slots), on the pool's workers and the calling thread; returns
// when all have run (an exception from a task is rethrown here). Called from inside a task, runs
// the slots on the calling thread.
void run_slots(size_t slots, const std::function<void(size_t)>& task);
// True inside a task of run_slots, where a loop runs on the calling thread alone: the loops below
// then call fn once, without the bookkeeping of slots and shares (attention's per-head tasks make
// ~1000 such nested calls a layer: a GEMM or a pack per block of queries).
bool in_task();
}  // namespace detail

// Runs fn(begin, end) over [0, n) split into contiguous chunks, one per thread, each a multiple
// of `grain` (except the last).
template <class Fn>
void parallel_for(size_t n, size_t grain, Fn&& fn) {
  const size_t threads = size_t(num_threads());
  if (threads <= 1 || n <= grain || detail::in_task()) {
    fn(size_t(0), n);
    return;
  }
  const size_t blocks = (n + grain - 1) / grain;
  detail::run_slots(threads, [&](size_t t) {
    const size_t b0 = blocks * t / threads, b1 = blocks * (t + 1) / threads;
    const size_t begin = b0 * grain, end = b1 * grain < n ? b1 * grain : n;
    if (begin < end) fn(begin, end);
  });
}

// Like parallel_for, but a thread that finishes its share early takes pieces from the end of a
// share still in progress. Each thread still starts on its own contiguous share and works through
// it front to back in large pieces (a quarter of what is left), so memory streams as in a static
// split; the pieces shrink toward `grain` only near the end. For memory-bound loops where one
// thread can fall behind by chance (a late wake-up, an interrupt, a slower share of DRAM): a
// static split waits for the slowest.
template <class Fn>
void parallel_for_balanced(size_t n, size_t grain, Fn&& fn) {
  const size_t threads = size_t(num_threads());
  if (threads <= 1 || n <= grain || detail::in_task()) {
    fn(size_t(0), n);
    return;
  }
  const size_t blocks = (n + grain - 1) / grain;
  if (blocks >= (size_t(1) << 32)) return parallel_for(n, grain, fn);
  // A share is [front, back) in blocks, packed in one word so that the owner (taking from the
  // front) and a thief (taking from the back) agree through one compare-and-swap.
  struct alignas(64) Share {
    std::atomic<uint64_t> range;
  };
  std::vector<Share> shares(threads);
  for (size_t t = 0; t < threads; ++t)
    shares[t].range.store((blocks * (t + 1) / threads) << 32 | (blocks * t / threads), std::memory_order_relaxed);
  auto run = [&](size_t b0, size_t b1) { fn(b0 * grain, b1 * grain < n ? b1 * grain : n); };
  detail::run_slots(threads, [&](size_t t) {
    for (;;) {  // own share, front to back
      uint64_t r = shares[t].range.load(std::memory_order_acquire);
      size_t f = r & 0xffffffffu, b = r >> 32;
      if (f >= b) break;
      const size_t take = (b - f + 3) / 4;
      if (!shares[t].range.compare_exchange_weak(r, uint64_t(b) << 32 | (f + take), std::memory_order_acq_rel)) continue;
      run(f, f + take);
    }
    for (size_t k = 1; k < threads; ++k) {  // then help the others, from the back of their shares
      Share& v = shares[(t + k) % threads];
      for (;;) {
        uint64_t r = v.range.load(std::memory_order_acquire);
        size_t f = r & 0xffffffffu, b = r >> 32;
        if (f >= b) break;
        const size_t take = (b - f + 1) / 2;
        if (!v.range.compare_exchange_weak(r, uint64_t(b - take) << 32 | f, std::memory_order_acq_rel)) continue;
        run(b - take, b);
      }
    }
  });
}

}  // namespace zephyr

// Thread-count control and a parallel loop over the OpenMP pool that OpenBLAS shares (we link its
// OpenMP build), so BLAS calls and our kernels never fight over the two cores.
#pragma once
#include <cstddef>

namespace zephyr {

// Sets the threads used by kernels and BLAS; 0 means all cores.
void set_num_threads(int n);
int num_threads();

// Runs fn(begin, end) over [0, n) split into contiguous chunks, one per thread, each a multiple
// of `grain` (except the last).
template <class Fn>
void parallel_for(size_t n, size_t grain, Fn&& fn) {
  const size_t threads = size_t(num_threads());
  if (threads <= 1 || n <= grain) {
    fn(size_t(0), n);
    return;
  }
  const size_t blocks = (n + grain - 1) / grain;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (size_t t = 0; t < threads; ++t) {
    const size_t b0 = blocks * t / threads, b1 = blocks * (t + 1) / threads;
    const size_t begin = b0 * grain, end = b1 * grain < n ? b1 * grain : n;
    if (begin < end) fn(begin, end);
  }
}

}  // namespace zephyr

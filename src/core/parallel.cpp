#include "core/parallel.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

extern "C" void openblas_set_num_threads(int);

namespace zephyr {

namespace {

int g_threads = 0;
thread_local bool t_in_task = false;

// A job is published by bumping the generation in `ticket` (high 32 bits); a thread claims slot c
// by a compare-and-swap of the low 32 bits from c to c + 1 under the same generation, so a thread
// that read an older job can never run a slot of a newer one.
class Pool {
 public:
  explicit Pool(int workers) {
    for (int i = 0; i < workers; ++i)
      threads_.emplace_back([this] {
        omp_set_num_threads(1);  // see run()
        work();
      });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  // A task that calls BLAS (attention's GEMMs) must run it on one thread: OpenBLAS's OpenMP build
  // reads the calling thread's OpenMP thread count, and a team per pool thread would put twice the
  // threads on the cores, spinning against each other (the 2-thread training step ran slower than
  // one thread). Workers are set once; the calling thread for the job's length.
  void run(size_t slots, const std::function<void(size_t)>& task) {
    omp_set_num_threads(1);
    struct Restore {
      ~Restore() { omp_set_num_threads(g_threads); }
    } restore;
    const Clock::time_point start = Clock::now();
    if (start < solo_until_) {  // contended: the caller runs every slot (same slots, same results)
      t_in_task = true;
      struct Leave {
        ~Leave() { t_in_task = false; }
      } leave;
      for (size_t s = 0; s < slots; ++s) task(s);
      return;
    }
    task_.store(&task, std::memory_order_relaxed);
    slots_.store(slots, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    const uint64_t gen = (ticket_.load(std::memory_order_relaxed) >> 32) + 1;
    ticket_.store(gen << 32, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (sleepers_ > 0) cv_.notify_all();
    }
    claim(gen);
    // Wait only for slots that are running; spin briefly, then let other work have the core.
    const Clock::time_point claimed = Clock::now();
    for (int spins = 0; done_.load(std::memory_order_acquire) < slots; ++spins) {
      if (spins < 4000) _mm_pause();
      else std::this_thread::yield();
    }
    note_wait(start, claimed);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Claims and runs slots of generation `gen` until none are left.
  void claim(uint64_t gen) {
    for (;;) {
      uint64_t t = ticket_.load(std::memory_order_acquire);
      if ((t >> 32) != gen) return;
      const size_t slots = slots_.load(std::memory_order_relaxed);
      const size_t c = size_t(t & 0xffffffffu);
      if (c >= slots) return;
      const std::function<void(size_t)>* task = task_.load(std::memory_order_relaxed);
      if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) continue;
      t_in_task = true;
      try {
        (*task)(c);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
      t_in_task = false;
      _mm_sfence();  // the slot's streaming stores are seen before it counts as done
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  void work() {
    uint64_t seen = 0;
    for (;;) {
      // Spin a while for the next job (decode runs a loop every few microseconds), then sleep.
      uint64_t gen = ticket_.load(std::memory_order_acquire) >> 32;
      for (int spins = 0; gen == seen && spins < 20000; ++spins) {
        _mm_pause();
        gen = ticket_.load(std::memory_order_acquire) >> 32;
      }
      if (gen == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        ++sleepers_;
        cv_.wait(lock, [&] { return quit_ || (ticket_.load(std::memory_order_acquire) >> 32) != seen; });
        --sleepers_;
        if (quit_) return;
        gen = ticket_.load(std::memory_order_acquire) >> 32;
      }
      seen = gen;
      claim(gen);
    }
  }

  // A worker taken off its core in the middle of a slot (another process wants the core) makes
  // the caller wait for a scheduler time slice, milliseconds, in a loop that takes microseconds:
  // on a shared machine two threads then decode slower than one. A wait longer than kStall and
  // than four times the caller's own part of the loop is such a stall; two within kWindow mean the cores
  // are contended: the caller then runs the loops alone for kSolo, and tries the workers again
  // after it.
  using Clock = std::chrono::steady_clock;
  static constexpr auto kStall = std::chrono::microseconds(500), kWindow = std::chrono::milliseconds(50),
                        kSolo = std::chrono::milliseconds(250);
  void note_wait(Clock::time_point start, Clock::time_point claimed) {
    const Clock::time_point now = Clock::now();
    if (now - claimed < std::max<Clock::duration>(kStall, 4 * (claimed - start))) return;  // not a stall: a long loop's imbalance
    if (now - last_stall_ < kWindow) solo_until_ = now + kSolo;
    last_stall_ = now;
  }
  Clock::time_point last_stall_{}, solo_until_{};  // touched by the caller only (under g_pool_mu)

  std::vector<std::thread> threads_;
  std::atomic<uint64_t> ticket_{0};
  std::atomic<const std::function<void(size_t)>*> task_{nullptr};
  std::atomic<size_t> slots_{0}, done_{0};
  std::exception_ptr error_;
  std::mutex mu_;
  std::condition_variable cv_;
  int sleepers_ = 0;
  bool quit_ = false;
};

std::unique_ptr<Pool> g_pool;
std::mutex g_pool_mu;  // one loop at a time from outside the pool (the engine, a test's threads)

// OMP_NUM_THREADS when set (an MPI job gives each rank its share of the cores that way), else
// every core this process may run on.
int default_threads() {
  static const int n = [] {
    const char* v = std::getenv("OMP_NUM_THREADS");
    const int env = v ? std::atoi(v) : 0;
    return env > 0 ? env : omp_get_num_procs();
  }();
  return n;
}

}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = default_threads();
  std::lock_guard<std::mutex> lock(g_pool_mu);
  if (n != g_threads || !g_pool) g_pool = std::make_unique<Pool>(n - 1);
  g_threads = n;
  openblas_set_num_threads(n);
}

int num_threads() {
  if (g_threads == 0) set_num_threads(0);
  return g_threads;
}

namespace detail {

bool in_task() { return t_in_task; }

void run_slots(size_t slots, const std::function<void(size_t)>& task) {
  if (t_in_task || slots <= 1) {
    for (size_t s = 0; s < slots; ++s) task(s);
  } else {
    num_threads();  // creates the pool on first use
    std::lock_guard<std::mutex> lock(g_pool_mu);
    g_pool->run(slots, task);
  }
  _mm_sfence();  // the caller's streaming stores, as a worker's before it counts its slot done
}

}  // namespace detail

void fence_streams() { _mm_sfence(); }

}  // namespace zephyr

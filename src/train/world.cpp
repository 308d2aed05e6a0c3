#include "train/world.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "core/error.h"

#ifdef ZEPHYR_HAVE_MPI
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace zephyr {

namespace {

// What a launcher sets in each process it starts: Open MPI's mpirun, MPICH's Hydra and Slurm's
// PMI2 plugin, and PMIx (srun --mpi=pmix, Open MPI 5). A process started by hand has none.
bool started_by_launcher(long* size, long* rank) {
  auto num = [](const char* name) -> long {
    const char* v = std::getenv(name);
    return v && *v ? std::strtol(v, nullptr, 10) : -1;
  };
  for (auto [s, r] : {std::pair{"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"}, std::pair{"PMI_SIZE", "PMI_RANK"},
                      std::pair{"PMIX_SIZE", "PMIX_RANK"}}) {
    *size = num(s);
    *rank = num(r);
    if (*size >= 0 || *rank >= 0) return true;
  }
  return false;
}

#ifdef ZEPHYR_HAVE_MPI

// Ends the job when one collective waits past the timeout. It cannot interrupt the MPI call, so
// it exits the process: the launcher then ends the other ranks, as for any rank that fails.
class Watchdog {
 public:
  Watchdog() : thread_([this] { watch(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void arm(const char* what, int rank, double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    what_ = what;
    rank_ = rank;
    seconds_ = seconds;
    deadline_ = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                        std::chrono::duration<double>(seconds));
    ++armed_;
    cv_.notify_all();
  }
  void disarm() {
    std::lock_guard<std::mutex> lock(mu_);
    what_ = nullptr;
    cv_.notify_all();
  }

 private:
  void watch() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return quit_ || what_; });
      if (quit_) return;
      const uint64_t armed = armed_;
      if (cv_.wait_until(lock, deadline_, [&] { return quit_ || !what_ || armed_ != armed; })) continue;
      std::fprintf(stderr,
                   "zephyr: error: rank %d waited %.0f s in %s for the other ranks (ddp_timeout): one of them died or "
                   "hangs; ending the job\n",
                   rank_, seconds_, what_);
      std::fflush(stderr);
      std::_Exit(1);
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  const char* what_ = nullptr;
  int rank_ = 0;
  double seconds_ = 0;
  uint64_t armed_ = 0;
  std::chrono::steady_clock::time_point deadline_;
  bool quit_ = false;
  std::thread thread_;
};

Watchdog* g_watchdog = nullptr;

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail("MPI", std::string(what) + " failed: " + std::string(msg, size_t(len)));
}

// Runs one collective under the watchdog. MPI counts are ints: a 7B model's gradient (7e9
// floats) goes in pieces.
template <class Fn>
void chunked(const char* what, int rank, double timeout, size_t n, Fn&& fn) {
  constexpr size_t kPiece = size_t(1) << 30;
  g_watchdog->arm(what, rank, timeout);
  size_t at = 0;
  do {
    const size_t k = std::min(kPiece, n - at);
    check(fn(at, int(k)), what);
    at += k;
  } while (at < n);
  g_watchdog->disarm();
}

#endif

}  // namespace

std::string mpi_library() {
#ifdef ZEPHYR_HAVE_MPI
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);
  std::string s(v, size_t(len));
  const size_t cut = s.find_first_of(",\n");
  return cut == std::string::npos ? s : s.substr(0, cut);
#else
  return "";
#endif
}

World* g_world = nullptr;

World& World::get() {
  static World w;
  g_world = &w;
  return w;
}

World::World() {
  long size = -1, rank = -1;
  if (!started_by_launcher(&size, &rank)) return;
#ifdef ZEPHYR_HAVE_MPI
  int provided = 0;
  // Only the main thread calls MPI (the watchdog never does).
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  mpi_ = true;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
  g_watchdog = new Watchdog;
#else
  if (size > 1 || rank > 0)
    fail("zephyr", "a launcher started this process as rank " + std::to_string(std::max(rank, 0L)) + " of " +
                       (size > 0 ? std::to_string(size) : std::string("several")) +
                       ", but this build has no MPI: install libopenmpi-dev and rebuild (make build), or run one process");
#endif
}

World::~World() {
#ifdef ZEPHYR_HAVE_MPI
  if (!mpi_) return;
  delete g_watchdog;
  g_watchdog = nullptr;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
#endif
}

std::string World::describe() const {
  if (!mpi_) return "one process";
  return "rank " + std::to_string(rank_) + " of " + std::to_string(size_) + " (" + mpi_library() + ")";
}

#ifdef ZEPHYR_HAVE_MPI
// One collective over n elements, in pieces [at, at + k); nothing to do alone.
#define ZEPHYR_COLLECTIVE(what, n, call) \
  if (size_ > 1) chunked(what, rank_, timeout_s_, n, [&](size_t at, int k) { return call; })
#else
#define ZEPHYR_COLLECTIVE(what, n, call) (void)0
#endif

void World::sum(float* data, size_t n) {
  ZEPHYR_COLLECTIVE("MPI_Allreduce", n, MPI_Allreduce(MPI_IN_PLACE, data + at, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
}
void World::sum(double* data, size_t n) {
  ZEPHYR_COLLECTIVE("MPI_Allreduce", n, MPI_Allreduce(MPI_IN_PLACE, data + at, k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
}
void World::broadcast(float* data, size_t n) {
  ZEPHYR_COLLECTIVE("MPI_Bcast", n, MPI_Bcast(data + at, k, MPI_FLOAT, 0, MPI_COMM_WORLD));
}
void World::broadcast(double* data, size_t n) {
  ZEPHYR_COLLECTIVE("MPI_Bcast", n, MPI_Bcast(data + at, k, MPI_DOUBLE, 0, MPI_COMM_WORLD));
}
void World::broadcast(int64_t* data, size_t n) {
  ZEPHYR_COLLECTIVE("MPI_Bcast", n, MPI_Bcast(data + at, k, MPI_INT64_T, 0, MPI_COMM_WORLD));
}
void World::barrier() { ZEPHYR_COLLECTIVE("MPI_Barrier", 0, MPI_Barrier(MPI_COMM_WORLD)); }

std::vector<double> World::gather(const std::vector<double>& mine) {
  if (size_ == 1) return mine;
  std::vector<int64_t> counts(size_t(size_), 0);
  counts[size_t(rank_)] = int64_t(mine.size());
  std::vector<double> c(counts.begin(), counts.end());
  sum(c.data(), c.size());  // every rank learns every count
  size_t total = 0;
  for (size_t r = 0; r < c.size(); ++r) total += size_t(c[r]);
  std::vector<double> all(total, 0.0);
  size_t at = 0;
  for (int r = 0; r < rank_; ++r) at += size_t(c[size_t(r)]);
  std::copy(mine.begin(), mine.end(), all.begin() + long(at));
  sum(all.data(), all.size());  // each slot is nonzero on one rank only: the sum is exact
  return all;
}

void World::end_job_after_error() {
#ifdef ZEPHYR_HAVE_MPI
  if (!g_world || !g_world->mpi_ || g_world->size_ == 1) return;
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
#endif
}

}  // namespace zephyr

// What the feedback and evaluation stages share: resumable JSONL outputs, a progress bar, a
// worker pool, and a content hash for ids and seeds.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "io/json_file.h"

namespace zephyr {

// FNV-1a of the bytes, from `h`.
inline uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// One JSONL line (invalid UTF-8 replaced, never throwing).
std::string line_of(const ordered_json& row);

// An append-only JSONL output that survives being killed: existing whole rows are read back (a
// torn last line is cut off), new rows are appended and flushed one by one. Thread-safe append.
class ResumableJsonl {
 public:
  ResumableJsonl(const std::string& path, const std::function<void(const ordered_json&)>& existing);
  ~ResumableJsonl();
  ResumableJsonl(const ResumableJsonl&) = delete;
  ResumableJsonl& operator=(const ResumableJsonl&) = delete;
  void append(const ordered_json& row);

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  std::mutex mu_;
};

// Counts, tokens/s and ETA on stderr: redrawn in place on a terminal, a plain line every few
// seconds otherwise.
class Progress {
 public:
  Progress(std::string what, int64_t total);
  void step(int64_t tokens, bool failed, int retries);

 private:
  std::string what_;
  int64_t total_, done_ = 0, tokens_ = 0, failed_ = 0, retries_ = 0;
  bool tty_;
  std::chrono::steady_clock::time_point t0_, last_;
  std::mutex mu_;
};

// Runs fn(i) for i in [0, n) on `threads` workers; the first exception stops the rest and is
// rethrown.
template <class Fn>
void run_parallel(size_t n, int threads, Fn&& fn) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  std::exception_ptr first;
  std::mutex mu;
  for (int t = 0; t < std::max(1, std::min<int>(threads, int(n))); ++t)
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < n;) {
        try {
          fn(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu);
          if (!first) first = std::current_exception();
          next = n;
        }
      }
    });
  for (auto& th : pool) th.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace zephyr

// Memory read bandwidth with N threads: each thread sums its part of a buffer far larger than
// the caches, the access pattern of a GEMV over weights. Prints {"gb_per_s": X} (best of 5).
#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

// 256-bit loads: they saturate memory bandwidth as well as 512-bit ones and run on every AVX2 CPU.
__attribute__((target("avx2"))) static float sum_lines(const float* p, size_t n) {
  __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    a = _mm256_add_ps(a, _mm256_loadu_ps(p + i));
    b = _mm256_add_ps(b, _mm256_loadu_ps(p + i + 8));
    c = _mm256_add_ps(c, _mm256_loadu_ps(p + i + 16));
    d = _mm256_add_ps(d, _mm256_loadu_ps(p + i + 24));
  }
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const size_t bytes = size_t(argc > 2 ? std::atoi(argv[2]) : 2048) << 20;
  const size_t n = bytes / sizeof(float);
  std::vector<float> buf(n);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = float(i & 7);
  double best = 0;
  volatile float sink = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      const size_t t = size_t(omp_get_thread_num()), T = size_t(omp_get_num_threads());
      const size_t b = n / T * t / 64 * 64, e = t + 1 == T ? n / 64 * 64 : n / T * (t + 1) / 64 * 64;
      total += sum_lines(buf.data() + b, e - b);
    }
    sink = sink + total;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(bytes) / s / 1e9);
  }
  std::printf("{\"gb_per_s\": %.2f, \"threads\": %d}\n", best, threads);
  return 0;
}

// fp32 SGEMM throughput of OpenBLAS with N threads on square matrices: the machine's practical
// GEMM peak that training speed is compared to. Prints {"gflops": X} (best of 5). (Debian's
// OpenBLAS 0.3.21 is built without its BF16 SBGEMM, so there is no bf16 peak to measure here.)
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/parallel.h"

int main(int argc, char** argv) {
  zephyr::set_num_threads(argc > 1 ? std::atoi(argv[1]) : 2);
  const int n = argc > 2 ? std::atoi(argv[2]) : 2048;
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * n * n * double(n) / s / 1e9);
  }
  std::printf("{\"gflops\": %.1f}\n", best);
  return 0;
}

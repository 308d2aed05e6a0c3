// The machine's practical GEMM peak that training speed is compared to, on square n x n matrices
// with N threads (best of 5): fp32 as the higher of OpenBLAS's SGEMM and our gemm_f32 (fp32
// training's products), and bf16 inputs with fp32 accumulation through our gemm_bf16 (Debian's
// OpenBLAS 0.3.21 is built without its SBGEMM; sft_step.sh also measures PyTorch's bf16 matmul and
// takes the higher). Prints {"gflops": fp32, "sgemm_gflops": OpenBLAS's, "f32_gflops": ours (0
// without AVX-512), "bf16_gflops": bf16 (0 without AVX512-BF16)}.
#include <cblas.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/parallel.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_f32.h"

template <class Fn>
static double best_gflops(int n, Fn&& fn) {
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * n * n * double(n) / s / 1e9);
  }
  return best;
}

int main(int argc, char** argv) {
  // As the zephyr binary sets them: large scratch buffers are reused, not mapped anew per call.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  zephyr::set_num_threads(argc > 1 ? std::atoi(argv[1]) : 2);
  const int n = argc > 2 ? std::atoi(argv[2]) : 2048;
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  const double sgemm = best_gflops(n, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  });
  const double f32 = !zephyr::gemm_f32_available() ? 0.0 : best_gflops(n, [&] {
    zephyr::gemm_f32(n, n, n, a.data(), n, false, b.data(), n, false, c.data(), n, false);  // B as [N, K], like a weight
  });
  const double bf16 = !zephyr::gemm_bf16_available() ? 0.0 : best_gflops(n, [&] {
    zephyr::gemm_bf16(n, n, n, a.data(), n, false, b.data(), n, false, c.data(), n, false);  // B as [N, K], like a weight
  });
  std::printf("{\"gflops\": %.1f, \"sgemm_gflops\": %.1f, \"f32_gflops\": %.1f, \"bf16_gflops\": %.1f}\n", std::max(sgemm, f32),
              sgemm, f32, bf16);
  return 0;
}

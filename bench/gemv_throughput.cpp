// GEMV kernel throughput in GB/s of weights streamed, for a matrix in DRAM and one that fits in
// cache (to tell memory-bound from compute-bound). Usage: gemv_throughput [threads] [rows] [cols] [type]
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "core/rng.h"
#include "kernels/matmul.h"
#include "kernels/quant/formats.h"
#include "kernels/quant/interleave.h"
#include "kernels/quant/products.h"

using namespace zephyr;

// Plain streaming read of the same bytes with the same thread split: the ceiling for a GEMV.
// 256-bit loads: they saturate memory bandwidth as well as 512-bit ones and run on every AVX2 CPU.
__attribute__((target("avx2"))) static float sum_lines(const uint8_t* p, size_t b, size_t e) {
  __m256 a = _mm256_setzero_ps(), c = a;
  for (size_t i = b; i < e; ++i) {
    a = _mm256_add_ps(a, _mm256_loadu_ps(reinterpret_cast<const float*>(p + i * 64)));
    c = _mm256_add_ps(c, _mm256_loadu_ps(reinterpret_cast<const float*>(p + i * 64 + 32)));
  }
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(a, c));
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

static double read_gb_per_s(const uint8_t* p, size_t bytes, int reps) {
  volatile float sink = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r)
    parallel_for(bytes / 64, 256, [&](size_t b, size_t e) { sink = sink + sum_lines(p, b, e); });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return double(bytes) * reps / s / 1e9;
}

static double run(const Matrix& w, const std::vector<float>& x, std::vector<float>& y, int reps) {
  matmul(x.data(), 1, w, y.data());
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) matmul(x.data(), 1, w, y.data());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return double(w.nbytes()) * reps / s / 1e9;
}

int main(int argc, char** argv) {
  set_num_threads(argc > 1 ? std::atoi(argv[1]) : 2);
  const int64_t rows = argc > 2 ? std::atoll(argv[2]) : 14336, cols = argc > 3 ? std::atoll(argv[3]) : 4096;
  Rng rng(1);
  std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(rows));
  for (auto& v : x) v = float(rng.normal());
  for (DType stored : {DType::BF16, DType::F16, DType::F32, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
    if (argc > 4 && std::string(argv[4]) != dtype_name(stored)) continue;
    // Block types as the model loader lays them out (8 rows interleaved where the CPU has VNNI).
    const DType t = is_quantized(stored) ? interleaved_type(stored, rows, cols) : stored;
    const size_t matrix_bytes = size_t(rows) * row_bytes(t, cols);
    std::vector<uint8_t> big(matrix_bytes * 4);  // 4 copies: no cache reuse
    if (is_quantized(stored)) {
      std::vector<float> w(static_cast<size_t>(cols));
      std::vector<uint8_t> plain(matrix_bytes);
      for (int64_t r = 0; r < rows; ++r) {
        for (auto& v : w) v = 0.05f * float(rng.normal());
        quantize_row(stored, w.data(), plain.data() + size_t(r) * row_bytes(stored, cols), cols);
      }
      for (int copy = 0; copy < 4; ++copy) {
        if (t != stored) interleave_rows(stored, plain.data(), big.data() + copy * matrix_bytes, rows, cols);
        else std::copy(plain.begin(), plain.end(), big.begin() + std::ptrdiff_t(copy * matrix_bytes));
      }
    } else {
      for (size_t i = 0; i < big.size(); i += 2) big[i + 1] = uint8_t(0x3c + (rng.next() & 1));
    }
    double dram = 0, stream = 0;
    for (int round = 0; round < 3; ++round) {  // interleaved, so both see the same machine load
      stream += read_gb_per_s(big.data(), big.size(), 2) / 3;
      for (int copy = 0; copy < 4; ++copy) {
        const Matrix w{t, rows, cols, big.data() + size_t(copy) * matrix_bytes};
        dram += run(w, x, y, 2) / 12;
      }
    }
    const Matrix small{t, 256, cols, big.data()};  // 2-4 MB: stays in L2/L3
    std::printf("{\"dtype\": \"%s\", \"rows\": %lld, \"cols\": %lld, \"threads\": %d, \"isa\": \"%s\", "
                "\"dram_gb_per_s\": %.2f, \"read_gb_per_s\": %.2f, \"ratio\": %.3f, \"cache_gb_per_s\": %.2f}\n",
                dtype_name(t), (long long)rows, (long long)cols, num_threads(), is_quantized(t) ? quant_isa() : gemv_isa(), dram, stream, dram / stream,
                run(small, x, y, 200));
  }
  return 0;
}

// The fp32 GEMM: each element is a chain of FMAs over k in order, one per block of 512 k when K is
// over 1024, each block's sum added to C (checked bit for bit against those chains spelled out
// with std::fma), for odd sizes (edges of every tile and of the 16-row packing groups), long K,
// every transpose combination, A's row stride wider than its rows (NaN between them, which must
// never be read), accumulation and both loop orders (A packed, or read in place as the outer
// operand or as the inner one over blocks of long K); and a row of C is the same bits
// in a product of any number of rows — what fp32 training's forward relies on.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>
#include <vector>

#include "core/parallel.h"
#include "core/rng.h"
#include "kernels/gemm_f32.h"

using namespace zephyr;

namespace {

std::vector<float> random_values(Rng& rng, size_t n) {
  std::vector<float> v(n);
  for (float& x : v) x = rng.uniform() * 2.0f - 1.0f;
  return v;
}

}  // namespace

TEST(GemmF32, EachElementIsTheFmaChainOverK) {
  if (!gemm_f32_available()) GTEST_SKIP() << "no AVX-512 on this CPU";
  Rng rng(5);
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {9, 33, 7}, {17, 70, 64}, {64, 96, 129},
                         {300, 40, 75}, {41, 9, 600}, {3, 5, 0}, {20, 35, 1024}, {37, 19, 2100},
                         {21, 70, 2100}}) {
    const std::vector<float> a = random_values(rng, size_t(M * K)), b = random_values(rng, size_t(N * K));
    const std::vector<float> c0 = random_values(rng, size_t(M * N));
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (const int64_t pad : {0, 5})
          for (const bool accumulate : {false, true}) {
            SCOPED_TRACE(testing::Message() << M << "x" << N << "x" << K << " ta " << ta << " tb " << tb << " pad " << pad
                                            << " acc " << accumulate);
            std::vector<float> c = c0;
            // ta: A stored [K, M]; tb: B stored [K, N] (the same values, laid out transposed).
            const int64_t lda = (ta ? M : K) + pad;
            std::vector<float> as(size_t((ta ? K : M) * lda), std::nanf("")), bs(b.size());
            for (int64_t m = 0; m < M; ++m)
              for (int64_t k = 0; k < K; ++k) as[size_t(ta ? k * lda + m : m * lda + k)] = a[size_t(m * K + k)];
            for (int64_t n = 0; n < N; ++n)
              for (int64_t k = 0; k < K; ++k) bs[size_t(tb ? k * N + n : n * K + k)] = b[size_t(n * K + k)];
            gemm_f32(M, N, K, as.data(), lda, ta, bs.data(), tb ? N : K, tb, c.data(), N, accumulate);
            int wrong = 0;
            for (int64_t m = 0; m < M; ++m)
              for (int64_t n = 0; n < N; ++n) {
                const int64_t block = K <= 1024 ? K : 512;
                float sum = accumulate ? c0[size_t(m * N + n)] : 0.0f;
                for (int64_t k0 = 0; k0 < K; k0 += block) {
                  float s = 0.0f;
                  for (int64_t k = k0; k < std::min(K, k0 + block); ++k)
                    s = std::fma(a[size_t(m * K + k)], b[size_t(n * K + k)], s);
                  sum = k0 == 0 && !accumulate ? s : s + sum;
                }
                wrong += c[size_t(m * N + n)] != sum;
              }
            EXPECT_EQ(wrong, 0);
          }
  }
}

TEST(GemmF32, ARowHasTheSameBitsInProductsOfAnyRows) {
  if (!gemm_f32_available()) GTEST_SKIP() << "no AVX-512 on this CPU";
  Rng rng(6);
  const int64_t M = 150, N = 77, K = 1300;
  const std::vector<float> a = random_values(rng, size_t(M * K)), b = random_values(rng, size_t(N * K));
  std::vector<float> all(size_t(M * N));
  gemm_f32(M, N, K, a.data(), K, false, b.data(), K, false, all.data(), N, false);
  for (auto [r0, rows] : {std::pair<int64_t, int64_t>{0, 1}, {3, 5}, {17, 40}, {149, 1}, {60, 90}}) {
    std::vector<float> part(size_t(rows * N));
    gemm_f32(rows, N, K, a.data() + r0 * K, K, false, b.data(), K, false, part.data(), N, false);
    for (int64_t i = 0; i < rows * N; ++i) ASSERT_EQ(part[size_t(i)], all[size_t(r0 * N + i)]) << "rows " << r0 << "+" << rows;
  }
}

// B packed once (F32Panels) and viewed from a panel's start and from any k: the same bits as the
// product over that part of B given unpacked (attention reads its keys and values this way).
TEST(GemmF32, PackedBViewsGiveTheUnpackedProduct) {
  if (!gemm_f32_available()) GTEST_SKIP() << "no AVX-512 on this CPU";
  Rng rng(7);
  const int64_t N = 100, K = 1400;
  const std::vector<float> b = random_values(rng, size_t(N * K));
  std::vector<float> bt(b.size());  // B stored [K, N]
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) bt[size_t(k * N + n)] = b[size_t(n * K + k)];
  for (const bool tb : {false, true}) {
    const F32Panels packed(tb ? bt.data() : b.data(), tb ? N : K, tb, N, K);
    for (auto [M, n0, n, k0, k] : {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{9, 0, 100, 0, 1400}, {20, 32, 50, 5, 64},
                                   {64, 64, 36, 300, 1100}, {3, 96, 4, 1399, 1}}) {
      SCOPED_TRACE(testing::Message() << "tb " << tb << " M " << M << " rows " << n0 << "+" << n << " k " << k0 << "+" << k);
      for (const bool ta : {false, true}) {
        const std::vector<float> a = random_values(rng, size_t(M * k));  // [M, k], or [k, M] when ta
        std::vector<float> want(size_t(M * n)), got(size_t(M * n));
        gemm_f32(M, n, k, a.data(), ta ? M : k, ta, b.data() + n0 * K + k0, K, false, want.data(), n, false);
        gemm_f32(M, a.data(), ta ? M : k, ta, packed.view(n0, n, k0, k), got.data(), n, false);
        EXPECT_EQ(got, want);
      }
    }
  }
}

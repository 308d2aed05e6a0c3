// The bf16 GEMM equals an fp32 GEMM of the bf16-rounded inputs up to accumulation order, for odd
// sizes (edges of every tile and of the 16-row packing groups), every transpose combination,
// accumulation, and both loop orders (M > N and M <= N), also with a K long enough that the outer
// panels go in groups; with either way of multiplying.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "core/buffer.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "kernels/gemm_bf16.h"

using namespace zephyr;

// Runs fn with each way of multiplying (vdpbf16ps and widened FMAs), then restores this CPU's.
template <class Fn>
void with_each_multiply(Fn&& fn) {
  const Bf16Multiply mine = bf16_multiply();
  for (Bf16Multiply m : {Bf16Multiply::kDotProduct, Bf16Multiply::kFma}) {
    set_bf16_multiply(m);
    SCOPED_TRACE(m == Bf16Multiply::kFma ? "fma" : "dot product");
    fn();
  }
  set_bf16_multiply(mine);
}

TEST(GemmBf16, MatchesRoundedFp32ProductsOnOddShapes) {
  if (!gemm_bf16_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  Rng rng(3);
  with_each_multiply([&] {
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {9, 33, 7}, {17, 70, 64}, {64, 96, 129},
                         {300, 40, 75}, {41, 9, 600}, {33, 140, 8200}, {140, 33, 8200}}) {  // the last two: long K
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        std::vector<float> a(size_t(M * K)), b(size_t(N * K)), c(size_t(M * N), 0.5f);
        for (auto& x : a) x = float(rng.normal());
        for (auto& x : b) x = float(rng.normal());
        const int64_t lda = ta ? M : K, ldb = tb ? N : K;
        gemm_bf16(M, N, K, a.data(), lda, ta, b.data(), ldb, tb, c.data(), N, true);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double ref = 0.5;
            for (int64_t k = 0; k < K; ++k) {
              const float av = ta ? a[size_t(k * lda + i)] : a[size_t(i * lda + k)];
              const float bv = tb ? b[size_t(k * ldb + j)] : b[size_t(j * ldb + k)];
              ref += double(bf16_to_f32(f32_to_bf16(av))) * bf16_to_f32(f32_to_bf16(bv));
            }
            ASSERT_NEAR(c[size_t(i * N + j)], ref, 1e-4 * (1 + std::sqrt(double(K)))) << M << "x" << N << "x" << K << " ta " << ta << " tb " << tb;
          }
      }
  }
  });
}

// The two ways of multiplying give the same sums: the products are exact in fp32 either way, and
// the FMA kernel adds each pair's odd product, then its even one, as vdpbf16ps does. Bit for bit
// where the CPU's vdpbf16ps rounds as the SDM specifies (Intel); elsewhere within a rounding of each sum.
TEST(GemmBf16, FmaMultiplyGivesTheDotProductsSums) {
  if (!gemm_bf16_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  Rng rng(5);
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{13, 50, 9}, {64, 64, 256}, {70, 33, 1031}}) {
    std::vector<float> a(size_t(M * K)), b(size_t(N * K)), c0(size_t(M * N), 0.25f), c1 = c0;
    for (auto& x : a) x = float(rng.normal());
    for (auto& x : b) x = float(rng.normal());
    const Bf16Multiply mine = bf16_multiply();
    set_bf16_multiply(Bf16Multiply::kDotProduct);
    gemm_bf16(M, N, K, a.data(), K, false, b.data(), K, false, c0.data(), N, true);
    set_bf16_multiply(Bf16Multiply::kFma);
    gemm_bf16(M, N, K, a.data(), K, false, b.data(), K, false, c1.data(), N, true);
    set_bf16_multiply(mine);
    for (size_t i = 0; i < c0.size(); ++i) {
      if (__builtin_cpu_is("intel")) ASSERT_EQ(c0[i], c1[i]) << M << "x" << N << "x" << K << " at " << i;
      else ASSERT_NEAR(c0[i], c1[i], 1e-5 * std::sqrt(double(K))) << M << "x" << N << "x" << K << " at " << i;
    }
  }
}

// One read packing x as A or B and xᵀ as A or B (or xᵀ alone) gives the products of packing each on
// its own.
TEST(GemmBf16, PackWithTransposeEqualsSeparatePacks) {
  if (!gemm_bf16_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  Rng rng(7);
  for (auto [M, K] : {std::pair<int64_t, int64_t>{45, 29}, {511, 72}, {16, 64}, {9, 3}, {33, 100}, {50, 1}}) {
    const int64_t ld = K + 3, N = 21;
    std::vector<float> x(size_t(M * ld)), y(size_t(N * K)), z(size_t(N * M));
    for (auto& v : x) v = float(rng.normal());
    for (auto& v : y) v = float(rng.normal());
    for (auto& v : z) v = float(rng.normal());
    Bf16Rows a(M, K), at(K, M), a2(M, K);
    Bf16Panels bt(K, M);
    pack_with_transpose(x.data(), ld, a, at);
    pack_with_transpose(x.data(), ld, a2, bt);
    const Bf16Panels py(y.data(), K, false, N, K), pz(z.data(), M, false, N, M);
    std::vector<float> want(size_t(M * N)), got(want.size()), got2(want.size());
    gemm_bf16(Bf16Rows(x.data(), ld, false, M, K), py, want.data(), N, false);  // x yᵀ
    gemm_bf16(a, py, got.data(), N, false);
    gemm_bf16(a2, py, got2.data(), N, false);
    EXPECT_EQ(got, want) << M << "x" << K;
    EXPECT_EQ(got2, want) << M << "x" << K;
    std::vector<float> want_t(size_t(K * N)), got_t(want_t.size());
    gemm_bf16(Bf16Rows(x.data(), ld, true, K, M), pz, want_t.data(), N, false);  // xᵀ zᵀ
    gemm_bf16(at, pz, got_t.data(), N, false);
    EXPECT_EQ(got_t, want_t) << M << "x" << K;
    Bf16Rows at_only(K, M);  // xᵀ alone, from x's rows
    pack_transposed(x.data(), ld, at_only);
    std::fill(got_t.begin(), got_t.end(), 0.0f);
    gemm_bf16(at_only, pz, got_t.data(), N, false);
    EXPECT_EQ(got_t, want_t) << M << "x" << K;
    std::vector<float> want_b(size_t(N * K)), got_b(want_b.size());
    const Bf16Rows rz(z.data(), M, false, N, M);
    gemm_bf16(rz, Bf16Panels(x.data(), ld, true, K, M), want_b.data(), K, false);  // z x
    gemm_bf16(rz, bt, got_b.data(), K, false);
    EXPECT_EQ(got_b, want_b) << M << "x" << K;
    // x as B and xᵀ as B: a weight for its forward and input-gradient products
    Bf16Panels b(M, K), bt2(K, M);
    pack_with_transpose(x.data(), ld, b, bt2);
    const Bf16Rows ry(y.data(), K, false, N, K);
    std::vector<float> want_w(size_t(N * M)), got_w(want_w.size()), got_wt(want_b.size());
    gemm_bf16(ry, Bf16Panels(x.data(), ld, false, M, K), want_w.data(), M, false);  // y xᵀ
    gemm_bf16(ry, b, got_w.data(), M, false);
    gemm_bf16(rz, bt2, got_wt.data(), K, false);
    EXPECT_EQ(got_w, want_w) << M << "x" << K;
    EXPECT_EQ(got_wt, want_b) << M << "x" << K;
  }
  Bf16Rows a(4, 6), wrong(5, 4);
  std::vector<float> x(24, 1.0f);
  EXPECT_THROW(pack_with_transpose(x.data(), 6, a, wrong), Error);
}

// Matrices made 16 rows at a time by a producer and packed as they come equal the same matrices
// packed whole by pack_with_transpose, as A and transposed as A or B, for row counts off the
// 16-row groups; a pack of another shape is refused.
TEST(GemmBf16, PackProducedEqualsPackWithTranspose) {
  if (!gemm_bf16_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  Rng rng(9);
  for (auto [M, K] : {std::pair<int64_t, int64_t>{511, 72}, {45, 29}, {16, 64}, {9, 3}, {33, 100}}) {
    const int64_t N = 13;
    std::vector<float> x(size_t(M * K)), y(size_t(M * K)), w(size_t(N * K)), z(size_t(N * M));
    for (auto* v : {&x, &y, &w, &z})
      for (auto& e : *v) e = float(rng.normal());
    Bf16Rows xa(M, K), xat(K, M), ya(M, K), pxa(M, K), pxat(K, M), pya(M, K);
    Bf16Panels ybt(K, M), pybt(K, M);
    pack_with_transpose(x.data(), K, xa, xat);
    pack_with_transpose(y.data(), K, ya, ybt);
    std::atomic<int64_t> rows{0};  // groups of rows run on several threads
    pack_produced(
        M, K,
        [&](int64_t r0, int64_t r1, float* const* out) {
          std::copy(x.begin() + r0 * K, x.begin() + r1 * K, out[0]);
          std::copy(y.begin() + r0 * K, y.begin() + r1 * K, out[1]);
          rows += r1 - r0;
        },
        {{&pxa, &pxat}, {&pya, nullptr, &pybt}});
    EXPECT_EQ(rows, M);
    const Bf16Panels pw(w.data(), K, false, N, K), pz(z.data(), M, false, N, M);
    const Bf16Rows rz(z.data(), M, false, N, M);
    auto product = [](const Bf16Rows& a, const Bf16Panels& b) {
      std::vector<float> c(size_t(a.m() * b.n()));
      gemm_bf16(a, b, c.data(), b.n(), false);
      return c;
    };
    EXPECT_EQ(product(pxa, pw), product(xa, pw)) << M << "x" << K;
    EXPECT_EQ(product(pya, pw), product(ya, pw)) << M << "x" << K;
    EXPECT_EQ(product(pxat, pz), product(xat, pz)) << M << "x" << K;
    EXPECT_EQ(product(rz, pybt), product(rz, ybt)) << M << "x" << K;
  }
  Bf16Rows a(4, 6), wrong(5, 4);
  EXPECT_THROW(pack_produced(4, 6, [](int64_t, int64_t, float* const*) {}, {{&a, &wrong}}), Error);
}

// A weight made 16 rows at a time (a quantized one dequantized) and packed as B and/or Bᵀ as it
// comes gives the products of the weight packed whole, for row counts off the 32-row panels.
TEST(GemmBf16, PackProducedWeightEqualsWholePacks) {
  if (!gemm_bf16_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  Rng rng(11);
  for (auto [N, K] : {std::pair<int64_t, int64_t>{511, 72}, {45, 29}, {32, 64}, {9, 3}, {70, 100}}) {
    const int64_t M = 19;
    std::vector<float> w(size_t(N * K)), x(size_t(M * K)), dy(size_t(M * N));
    for (auto* v : {&w, &x, &dy})
      for (auto& e : *v) e = float(rng.normal());
    auto producer = [&](int64_t r0, int64_t r1, float* const* out) { std::copy(w.begin() + r0 * K, w.begin() + r1 * K, out[0]); };
    Bf16Panels b(N, K), bt(K, N), b_only(N, K), bt_only(K, N);
    pack_produced(N, K, producer, &b, &bt);
    pack_produced(N, K, producer, &b_only, nullptr);
    pack_produced(N, K, producer, nullptr, &bt_only);
    const Bf16Rows rx(x.data(), K, false, M, K), rdy(dy.data(), N, false, M, N);
    auto product = [](const Bf16Rows& a, const Bf16Panels& p) {
      std::vector<float> c(size_t(a.m() * p.n()));
      gemm_bf16(a, p, c.data(), p.n(), false);
      return c;
    };
    const auto y = product(rx, Bf16Panels(w.data(), K, false, N, K)), dx = product(rdy, Bf16Panels(w.data(), K, true, K, N));
    EXPECT_EQ(product(rx, b), y) << N << "x" << K;
    EXPECT_EQ(product(rx, b_only), y) << N << "x" << K;
    EXPECT_EQ(product(rdy, bt), dx) << N << "x" << K;
    EXPECT_EQ(product(rdy, bt_only), dx) << N << "x" << K;
  }
  Bf16Panels wrong(5, 4);
  EXPECT_THROW(pack_produced(4, 6, [](int64_t, int64_t, float* const*) {}, &wrong, nullptr), Error);
}

// Streaming writes (Bf16Write::kStream) give what cached ones give: packs made that way (whole,
// by groups, produced) and products storing C that way, with either way of multiplying, for shapes
// off the tiles (partial tiles are stored as cached), with C's rows aligned and not, storing over C
// and adding to it.
TEST(GemmBf16, StreamedWritesEqualCachedOnes) {
  if (!gemm_bf16_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  Rng rng(13);
  with_each_multiply([&] {
    for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{64, 96, 40}, {45, 70, 29}, {200, 37, 130}, {9, 32, 8200}}) {
      Buffer x(size_t(M * K)), w(size_t(N * K)), y(size_t(M * N)), z(size_t(N * M));
      for (auto* v : {&x, &w, &y, &z})
        for (auto& e : *v) e = float(rng.normal());
      Bf16Rows a(M, K), at(K, M), sa(M, K, Bf16Write::kStream), sat(K, M, Bf16Write::kStream);
      pack_with_transpose(x.data(), K, a, at);
      pack_with_transpose(x.data(), K, sa, sat);
      Bf16Rows pa(M, K, Bf16Write::kStream), pat(K, M, Bf16Write::kStream);
      pack_produced(
          M, K, [&](int64_t r0, int64_t r1, float* const* out) { std::copy(x.begin() + r0 * K, x.begin() + r1 * K, out[0]); },
          {{&pa, &pat}});
      Bf16Panels b(N, K), bt(K, N), sb(N, K, Bf16Write::kStream), sbt(K, N, Bf16Write::kStream);
      pack_with_transpose(w.data(), K, b, bt);
      pack_with_transpose(w.data(), K, sb, sbt);
      Bf16Panels gb(N, K, Bf16Write::kStream), gbt(K, N, Bf16Write::kStream);  // as the optimizer packs
      for (int64_t g = 0; g < pack_groups(gb); ++g) pack_group_with_transpose(w.data(), K, g, gb, gbt);
      fence_streams();
      Bf16Panels pb(N, K, Bf16Write::kStream), pbt(K, N, Bf16Write::kStream);
      pack_produced(
          N, K, [&](int64_t r0, int64_t r1, float* const* out) { std::copy(w.begin() + r0 * K, w.begin() + r1 * K, out[0]); },
          &pb, &pbt);
      const Bf16Rows ry(y.data(), N, false, M, N);
      const Bf16Panels pz(z.data(), M, false, N, M);
      // C (+)= A · Bᵀ into C's rows [rows, cols] at row stride ld, for each pair of packs; each
      // result equal to the first pair's stored as cached.
      auto check = [&](std::vector<const Bf16Rows*> as, std::vector<const Bf16Panels*> bs, int64_t rows, int64_t cols) {
        for (int64_t pad : {0, 16, 4})  // 0 and 16 keep the tiles' lines aligned where cols allows
          for (bool accumulate : {false, true}) {
            const int64_t ld = cols + pad;
            SCOPED_TRACE(testing::Message() << M << "x" << N << "x" << K << " C " << rows << "x" << cols << " ld " << ld
                                            << " accumulate " << accumulate);
            Buffer want(size_t(rows * ld), 0.5f);
            gemm_bf16(*as[0], *bs[0], want.data(), ld, accumulate);
            for (const Bf16Rows* ra : as)
              for (const Bf16Panels* rb : bs) {
                Buffer got(size_t(rows * ld), 0.5f);
                gemm_bf16(*ra, *rb, got.data(), ld, accumulate, Bf16Write::kStream);
                ASSERT_EQ(got, want);
              }
          }
      };
      check({&a, &sa, &pa}, {&b, &sb, &gb, &pb}, M, N);  // x wᵀ
      check({&at, &sat, &pat}, {&pz}, K, N);               // xᵀ zᵀ
      check({&ry}, {&bt, &sbt, &gbt, &pbt}, M, K);         // y w
    }
  });
}

// Products under attention's causal mask skip only work that adds zeros: where A is zero past
// (kKUpTo) or before (kKFrom) each row's diagonal, the skipping product equals the whole one bit
// for bit, with and without accumulation; kColumns computes every entry on or below the diagonal
// as the whole product does, and what it skips holds zeros.
TEST(GemmBf16, CausalSkippingEqualsTheWholeProduct) {
  if (!gemm_bf16_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  Rng rng(11);
  with_each_multiply([&] {
  for (auto [M, N, K, off] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{64, 40, 100, 36}, {45, 21, 77, 0}, {17, 70, 64, 13},
                              {64, 64, 128, 64}, {9, 33, 40, 3}}) {
    std::vector<float> b(size_t(N * K)), c0(size_t(M * N));
    for (auto& v : b) v = float(rng.normal());
    for (auto& v : c0) v = float(rng.normal());
    const Bf16Panels pb(b.data(), K, false, N, K);
    for (auto kind : {Bf16Causal::kKUpTo, Bf16Causal::kKFrom}) {
      std::vector<float> a(size_t(M * K));
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < K; ++k) {
          const bool masked = kind == Bf16Causal::kKUpTo ? k > m + off : k < m - off;
          a[size_t(m * K + k)] = masked ? 0.0f : float(rng.normal());
        }
      const Bf16Rows pa(a.data(), K, false, M, K);
      for (bool acc : {false, true}) {
        std::vector<float> whole = c0, skipping = c0;
        gemm_bf16(pa, pb.view(), whole.data(), N, acc);
        gemm_bf16(pa, pb.view(), skipping.data(), N, acc, {kind, off});
        EXPECT_EQ(skipping, whole) << M << "x" << N << "x" << K << " offset " << off << " kind " << kind << " accumulate " << acc;
      }
    }
    std::vector<float> a(size_t(M * K));
    for (auto& v : a) v = float(rng.normal());
    const Bf16Rows pa(a.data(), K, false, M, K);
    std::vector<float> whole(c0.size()), skipping(c0.size(), 7.0f);
    gemm_bf16(pa, pb.view(), whole.data(), N, false);
    gemm_bf16(pa, pb.view(), skipping.data(), N, false, {Bf16Causal::kColumns, off});
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        const float got = skipping[size_t(m * N + n)], want = whole[size_t(m * N + n)];
        if (n <= m + off) ASSERT_EQ(got, want) << m << "," << n << " of " << M << "x" << N << " offset " << off;
        else ASSERT_TRUE(got == want || got == 0.0f) << m << "," << n << " of " << M << "x" << N << " offset " << off;
      }
  }
  });
}

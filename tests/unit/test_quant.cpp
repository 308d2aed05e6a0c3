// Block quantization: quantize → dequantize stays within each format's error bound, and every
// dot-product kernel (AVX-512 VNNI, AVX2, the multi-token prefill kernel, matmul) agrees with
// the scalar reference on the same quantized activations.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "kernels/matmul.h"
#include "kernels/quant/activations.h"
#include "kernels/quant/formats.h"
#include "kernels/quant/interleave.h"
#include "kernels/quant/products.h"

using namespace zephyr;

namespace {

const DType kTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::Q6_K};

std::vector<float> randn(Rng& rng, size_t n, float scale = 1.0f) {
  std::vector<float> v(n);
  for (auto& x : v) x = scale * float(rng.normal());
  return v;
}

// Largest error per element the format allows, relative to the block's largest magnitude: half
// a quantization step, one step where the symmetric formats clamp (the largest magnitude maps to
// −8 / −32, the other side ends at +7 / +31), plus the rounding of the scales to f16 / 6 bits.
double step_bound(DType t) {
  switch (t) {
    case DType::Q8_0: return 0.5 / 127 + 1e-3;
    case DType::Q4_0: return 1.0 / 8 + 1e-3;
    case DType::Q4_1: return 0.5 * 2 / 15 + 2e-3;
    case DType::Q4_K: return 2.0 / 15 + 0.05;  // 6-bit sub-block scales and mins add error
    case DType::Q6_K: return 1.0 / 32 + 0.02;
    default: return 0;
  }
}

struct ForceIsa {
  explicit ForceIsa(const char* isa) { quant_force_isa(isa); }
  ~ForceIsa() { quant_force_isa(""); }
};

}  // namespace

TEST(Quant, RoundTripWithinFormatBound) {
  Rng rng(11);
  for (DType t : kTypes) {
    const int64_t n = 1024;
    auto x = randn(rng, size_t(n));
    x[5] = 0;  // exact zeros and a constant block must survive
    for (int i = 256; i < 288; ++i) x[size_t(i)] = 0.25f;
    std::vector<uint8_t> q(row_bytes(t, n));
    quantize_row(t, x.data(), q.data(), n);
    std::vector<float> y(static_cast<size_t>(n));
    dequantize_row(t, q.data(), y.data(), n);
    const int64_t B = block_elements(t);
    for (int64_t b = 0; b < n / B; ++b) {
      float amax = 0;
      for (int64_t i = 0; i < B; ++i) amax = std::max(amax, std::fabs(x[size_t(b * B + i)]));
      for (int64_t i = 0; i < B; ++i)
        ASSERT_LE(std::fabs(y[size_t(b * B + i)] - x[size_t(b * B + i)]), step_bound(t) * amax + 1e-6)
            << dtype_name(t) << " element " << b * B + i;
    }
    EXPECT_NEAR(y[5], 0.0f, step_bound(t) * 3) << dtype_name(t);
    std::vector<float> fast(static_cast<size_t>(n));  // the vectorised prefill path: same values
    dequantize_rows(t, q.data(), 1, n, 0, 1, fast.data());
    EXPECT_EQ(fast, y) << dtype_name(t);
    EXPECT_TRUE(can_quantize(t)) << dtype_name(t);
  }
  // Interleaved layouts are made by interleave_rows, never by quantize_row.
  for (DType t : {DType::Q4_0x8, DType::Q8_0x8, DType::Q4_1x8, DType::Q4_Kx8, DType::Q6_Kx8, DType::F32})
    EXPECT_FALSE(can_quantize(t)) << int(t);
}

TEST(Quant, Q4_0AndQ8_0MatchTheReferenceRounding) {
  // Hand-computed: Q4_0 maps the largest magnitude (−4) to q = 0 with d = 0.5; Q8_0 rounds half
  // away from zero.
  std::vector<float> x(32, 0.0f);
  x[0] = -4.0f, x[1] = 1.0f, x[2] = 3.5f, x[17] = 0.74f;
  BlockQ4_0 b4;
  quantize_row(DType::Q4_0, x.data(), &b4, 32);
  EXPECT_EQ(f16_to_f32(b4.d), 0.5f);
  EXPECT_EQ(b4.q[0] & 0xF, 0);   // -4 / 0.5 + 8
  EXPECT_EQ(b4.q[1] & 0xF, 10);  // 1 / 0.5 + 8
  EXPECT_EQ(b4.q[2] & 0xF, 15);  // 3.5 / 0.5 + 8 = 15
  EXPECT_EQ(b4.q[1] >> 4, 9);    // element 17: trunc(0.74 / 0.5 + 8.5) = 9
  std::vector<float> y(32, 0.0f);
  y[0] = 127.0f, y[1] = 2.5f, y[2] = -2.5f;
  BlockQ8_0 b8;
  quantize_row(DType::Q8_0, y.data(), &b8, 32);
  EXPECT_EQ(f16_to_f32(b8.d), 1.0f);
  EXPECT_EQ(b8.q[1], 3);
  EXPECT_EQ(b8.q[2], -3);
}

TEST(Quant, EveryKernelMatchesTheScalarReference) {
  Rng rng(5);
  for (DType t : kTypes)
    for (int64_t n : {int64_t(256), int64_t(320), int64_t(512), int64_t(1280)}) {
      if (n % block_elements(t) != 0) continue;  // 320: the 64-element path of the 32-blocks
      const int64_t rows = 7;
      std::vector<uint8_t> w(size_t(rows) * row_bytes(t, n));
      for (int64_t r = 0; r < rows; ++r) {
        auto v = randn(rng, size_t(n), 0.05f);
        quantize_row(t, v.data(), w.data() + size_t(r) * row_bytes(t, n), n);
      }
      auto x = randn(rng, size_t(n));
      QuantizedActivations a;
      quantize_activations(x.data(), n, a);
      std::vector<double> ref(static_cast<size_t>(rows));
      double mag = 0;
      for (int64_t r = 0; r < rows; ++r) {
        ref[size_t(r)] = quant_dot_reference(t, w.data() + size_t(r) * row_bytes(t, n), a);
        mag = std::max(mag, std::fabs(ref[size_t(r)]));
      }
      for (const char* isa : {"", "avx2", "scalar"}) {
        ForceIsa force(isa);
        std::vector<float> y(static_cast<size_t>(rows));
        quant_gemv_rows(t, w.data(), rows, n, a, 0, rows, y.data());
        for (int64_t r = 0; r < rows; ++r)
          ASSERT_NEAR(y[size_t(r)], ref[size_t(r)], 1e-5 * (1 + mag) * std::sqrt(double(n)))
              << dtype_name(t) << " n " << n << " isa " << quant_isa();
      }
      // Several tokens at once (the prefill kernel), through matmul: each equals its GEMV.
      const int64_t ntok = 6;
      auto xs = randn(rng, size_t(ntok * n));
      const Matrix m{t, rows, n, w.data()};
      for (const char* isa : {"", "avx2", "scalar"}) {
        ForceIsa force(isa);
        std::vector<float> y(size_t(ntok * rows));
        matmul(xs.data(), ntok, m, y.data());
        for (int64_t k = 0; k < ntok; ++k) {
          quantize_activations(xs.data() + k * n, n, a);
          for (int64_t r = 0; r < rows; ++r) {
            const double e = quant_dot_reference(t, w.data() + size_t(r) * row_bytes(t, n), a);
            ASSERT_NEAR(y[size_t(k * rows + r)], e, 1e-5 * (1 + std::fabs(e)) * std::sqrt(double(n)))
                << dtype_name(t) << " isa " << quant_isa();
          }
        }
      }
    }
}

// 32+ tokens (prefill) go through a GEMM on dequantized panels: bf16 where the CPU has AVX-512
// BF16 (x rounded to bf16: relative error 2^-8 per product), else BLAS's fp32 sgemm.
TEST(Quant, ManyTokensMatchTheDequantizedProduct) {
  Rng rng(9);
  const int64_t rows = 24, n = 512, ntok = 40;
  for (DType t : kTypes) {
    std::vector<uint8_t> w(size_t(rows) * row_bytes(t, n));
    std::vector<float> deq(size_t(rows * n));
    for (int64_t r = 0; r < rows; ++r) {
      auto v = randn(rng, size_t(n), 0.05f);
      quantize_row(t, v.data(), w.data() + size_t(r) * row_bytes(t, n), n);
      dequantize_row(t, w.data() + size_t(r) * row_bytes(t, n), deq.data() + r * n, n);
    }
    auto xs = randn(rng, size_t(ntok * n));
    std::vector<float> y(size_t(ntok * rows));
    matmul(xs.data(), ntok, Matrix{t, rows, n, w.data()}, y.data());
    for (int64_t k = 0; k < ntok; ++k)
      for (int64_t r = 0; r < rows; ++r) {
        double e = 0, mag = 0;
        for (int64_t i = 0; i < n; ++i) {
          e += double(deq[size_t(r * n + i)]) * xs[size_t(k * n + i)];
          mag += std::fabs(double(deq[size_t(r * n + i)]) * xs[size_t(k * n + i)]);
        }
        ASSERT_NEAR(y[size_t(k * rows + r)], e, 0.008 * mag + 1e-5) << dtype_name(t) << " token " << k << " row " << r;
      }
  }
}

TEST(Quant, ActivationQuantizationIsClose) {
  // The quantized dot product differs from the fp32 one only by the int8 rounding of x.
  Rng rng(8);
  const int64_t n = 4096;
  auto w = randn(rng, size_t(n), 0.02f), x = randn(rng, size_t(n));
  std::vector<uint8_t> q(row_bytes(DType::Q8_0, n));
  quantize_row(DType::Q8_0, w.data(), q.data(), n);
  std::vector<float> wd(static_cast<size_t>(n));
  dequantize_row(DType::Q8_0, q.data(), wd.data(), n);
  double exact = 0, norm = 0;
  for (int64_t i = 0; i < n; ++i) exact += double(wd[size_t(i)]) * x[size_t(i)], norm += std::fabs(wd[size_t(i)] * x[size_t(i)]);
  float y;
  const Matrix m{DType::Q8_0, 1, n, q.data()};
  matmul(x.data(), 1, m, &y);
  EXPECT_NEAR(y, exact, 0.01 * norm);
}

TEST(Quant, ActivationsQuantizeAsDefinedUnderEveryIsa) {
  // Per block of 32: d = max|x| / 127, q = x / d rounded half to even; the lane tables are sums
  // of q. Checked from the definition, for the vector and the scalar paths alike.
  Rng rng(5);
  const int64_t n = 512;
  auto x = randn(rng, size_t(n));
  x[0] = 127.0f;  // block 0: d = 1, so these are exact ties
  x[1] = 2.5f, x[2] = -2.5f, x[3] = 3.5f, x[4] = 0.5f;
  for (const char* isa : {"", "scalar"}) {
    quant_force_isa(isa);
    QuantizedActivations a;
    quantize_activations(x.data(), n, a);
    quant_force_isa("");
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[size_t(32 * b + i)]));
      const float d = amax / 127.0f;
      int sum[8] = {};
      for (int i = 0; i < 32; ++i) {
        const int q = int(std::nearbyint(x[size_t(32 * b + i)] * (1.0f / d)));
        ASSERT_EQ(a.q[size_t(32 * b + i)], q) << isa << " element " << 32 * b + i;
        sum[i / 4] += q;
      }
      for (int l = 0; l < 8; ++l) {
        const size_t li = size_t(8 * b + l);
        ASSERT_EQ(a.lane_d[li], d);
        ASSERT_EQ(a.lane_s[li], d * float(sum[l]));
        ASSERT_EQ(a.lane_off[0][li], -8 * sum[l]);
        ASSERT_EQ(a.lane_off[1][li], -32 * sum[l]);
        ASSERT_EQ(a.lane_off[2][li], -128 * sum[l]);
      }
      for (int j = 0; j < 4; ++j) {
        ASSERT_EQ(a.q4_lane_off[size_t(4 * b + j)], -8 * (sum[j] + sum[4 + j]));
        ASSERT_EQ(a.q4_lane_s[size_t(4 * b + j)], d * float(sum[j] + sum[4 + j]));
      }
      ASSERT_EQ(a.block_d[size_t(b)], d);
      ASSERT_EQ(a.off32[size_t(b)], -8 * (sum[0] + sum[1] + sum[2] + sum[3] + sum[4] + sum[5] + sum[6] + sum[7]));
      for (int h = 0; h < 2; ++h) {  // the two sub-blocks of 16
        ASSERT_EQ(a.d16[size_t(2 * b + h)], d);
        ASSERT_EQ(a.off16[size_t(2 * b + h)], -32 * (sum[4 * h] + sum[4 * h + 1] + sum[4 * h + 2] + sum[4 * h + 3]));
      }
    }
    // The K-quant orders: within 128 (k32) or 64 (k16) elements, 16-byte group v holds 4 values of
    // each of the 4 sub-blocks of 32 (16): byte 4i + k of group v is element S·i + 4v + k.
    for (int64_t e = 0; e < n; ++e) {
      const int64_t g = e / 128, v = e % 128 / 16, i = e % 16 / 4, k = e % 4;
      ASSERT_EQ(a.k32[size_t(e)], a.q[size_t(128 * g + 32 * i + 4 * v + k)]) << isa << " k32 byte " << e;
      const int64_t g16 = e / 64, v16 = e % 64 / 16;
      ASSERT_EQ(a.k16[size_t(e)], a.q[size_t(64 * g16 + 16 * i + 4 * v16 + k)]) << isa << " k16 byte " << e;
    }
    EXPECT_EQ(a.q[1], 2) << isa;  // half to even, not away from zero
    EXPECT_EQ(a.q[2], -2) << isa;
    EXPECT_EQ(a.q[3], 4) << isa;
    EXPECT_EQ(a.q[4], 0) << isa;
  }
}

TEST(Quant, InterleavedRowsMatchTheirPlainLayout) {
  // Q4_0 / Q8_0 / Q4_1 / Q4_K / Q6_K re-laid out 8 rows at a time: same rows back, same dot
  // products; rows of 2560 are stored in a column chunk of 2048 and one of 512; 576 (SmolLM2's
  // rows) only where a column is one or two blocks.
  Rng rng(21);
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_1, DType::Q4_K, DType::Q6_K})
  for (int64_t n : {int64_t(512), int64_t(2560), int64_t(576)}) {
    if (n == 576 && block_elements(t) == 256) continue;
    const int64_t rows = 24;
    const DType fast = interleaved_type(t, rows, n);
    if (fast == t && n == 576) continue;  // Q4_0x8's columns are 128 wide
    if (fast == t) GTEST_SKIP() << "no AVX-512 VNNI: the interleaved layout is not used";
    std::vector<uint8_t> w(size_t(rows) * row_bytes(t, n)), wi(w.size()), parts(w.size());
    for (int64_t r = 0; r < rows; ++r) {
      auto v = randn(rng, size_t(n), 0.05f);
      quantize_row(t, v.data(), w.data() + size_t(r) * row_bytes(t, n), n);
    }
    interleave_rows(t, w.data(), wi.data(), rows, n);
    // Group by group (as the model loader does it) gives the same bytes.
    interleave_groups(t, w.data(), parts.data(), rows, n, 0, 1);
    interleave_groups(t, w.data() + 8 * row_bytes(t, n), parts.data(), rows, n, 1, 3);
    ASSERT_EQ(parts, wi) << dtype_name(t) << " n " << n;
    if (t == DType::Q8_0 && n == 2560) {  // the chunked layout: a Q8_0x8 column (272 bytes) starts with 8 rows' d
      const size_t col = 272, row_b = row_bytes(t, n);
      EXPECT_EQ(0, std::memcmp(wi.data() + 64 * col, w.data() + 8 * row_b, 2));  // group 1, block 0: after group 0's 64
      EXPECT_EQ(0, std::memcmp(wi.data() + 3 * 64 * col, w.data() + 64 * 34, 2));  // group 0, block 64: chunk 1
      EXPECT_EQ(0, std::memcmp(wi.data() + (3 * 64 + 16) * col, w.data() + 8 * row_b + 64 * 34, 2));  // group 1, block 64
    }
    const Matrix plain{t, rows, n, w.data()}, inter{fast, rows, n, wi.data()};
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    std::vector<float> all(size_t(rows * n));
    dequantize_rows(fast, wi.data(), rows, n, 0, rows, all.data());
    for (int64_t r = 0; r < rows; ++r) {
      matrix_row(plain, r, a.data());
      matrix_row(inter, r, b.data());
      ASSERT_EQ(a, b) << dtype_name(t) << " row " << r;
      ASSERT_TRUE(std::equal(a.begin(), a.end(), all.begin() + r * n)) << dtype_name(t) << " row " << r;
    }
    auto x = randn(rng, size_t(n));
    QuantizedActivations q;
    quantize_activations(x.data(), n, q);
    for (int64_t ntok : {int64_t(1), int64_t(3), int64_t(6), int64_t(45)}) {
      auto xs = randn(rng, size_t(ntok * n));
      std::vector<float> y(size_t(ntok * rows));
      std::vector<QuantizedActivations> acts(static_cast<size_t>(ntok));  // the kernels (matmul may take a GEMM)
      for (int64_t k = 0; k < ntok; ++k) quantize_activations(xs.data() + k * n, n, acts[size_t(k)], fast);
      quant_gemm_rows(fast, wi.data(), rows, acts.data(), ntok, 0, rows, y.data(), rows);
      for (int64_t k = 0; k < ntok; ++k) {
        quantize_activations(xs.data() + k * n, n, q);
        for (int64_t r = 0; r < rows; ++r) {
          const double e = quant_dot_reference(t, w.data() + size_t(r) * row_bytes(t, n), q);
          ASSERT_NEAR(y[size_t(k * rows + r)], e, 1e-5 * (1 + std::fabs(e)) * std::sqrt(double(n))) << dtype_name(t) << " row " << r;
        }
      }
    }
  }
}

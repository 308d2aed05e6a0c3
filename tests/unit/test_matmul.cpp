// Unquantized weights through matmul: every path (GEMV for 1-3 tokens, widened panels and SGEMM
// beyond) equals a double-precision product of the widened rows; the vectorised F16 widening
// equals the scalar IEEE conversion for all 65536 halves; OpenBLAS runs AVX-512 kernels on Intel
// CPUs that have it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/cpu_isa.h"
#include "core/dtype.h"
#include "core/rng.h"
#include "kernels/matmul.h"
#include "kernels/quant/formats.h"
#include "kernels/quant/interleave.h"
#include "kernels/vec.h"

using namespace zephyr;

extern "C" char* openblas_get_corename();

// Debian's OpenBLAS gives Intel models it does not know (an Emerald Rapids Xeon) its SSE3 kernels,
// at a fifth of the SGEMM rate; every program linking zephyr_lib switches it to SkylakeX's at start
// (src/core/openblas_core.cpp). Fails on such a Xeon without the switch (tried). Below AVX-512 a
// capped level's (ZEPHYR_CPU_ISA) kernels run.
TEST(Matmul, OpenBlasRunsTheKernelsOfZephyrsLevel) {
  if (std::getenv("OPENBLAS_CORETYPE")) GTEST_SKIP() << "OPENBLAS_CORETYPE is set: the user's choice";
  const std::string core = openblas_get_corename();
  const CpuIsa isa = cpu_isa();
  if (isa == CpuIsa::kBaseline && cpu_isa_detected() > isa) EXPECT_EQ(core, "Prescott");
  else if (isa == CpuIsa::kAvx2 && cpu_isa_detected() > isa) EXPECT_TRUE(core == "Haswell" || core == "Zen") << core;
  else if (isa >= CpuIsa::kAvx512 && __builtin_cpu_is("intel"))
    EXPECT_TRUE(core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids") << "OpenBLAS runs its " << core << " kernels";
  else GTEST_SKIP() << "OpenBLAS's own choice (" << core << ") on this CPU";
}

TEST(Matmul, F16WideningMatchesTheScalarConversion) {
  std::vector<uint16_t> h(65536);
  for (size_t i = 0; i < h.size(); ++i) h[i] = uint16_t(i);
  std::vector<float> f(h.size());
  to_f32(DType::F16, h.data(), f.data(), h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    const float s = f16_to_f32(h[i]);
    if (std::isnan(s)) ASSERT_TRUE(std::isnan(f[i])) << i;
    else ASSERT_EQ(std::memcmp(&s, &f[i], 4), 0) << "half 0x" << std::hex << i;
  }
}

TEST(Matmul, SixteenBitAndFp32RowsMatchTheirWidenedProduct) {
  Rng rng(3);
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (int64_t cols : {int64_t(100), int64_t(256)})
      for (int64_t n : {int64_t(1), int64_t(3), int64_t(9)}) {
        const int64_t rows = 37;
        std::vector<float> wf(size_t(rows * cols)), x(size_t(n * cols));
        for (float& v : wf) v = rng.normal();
        for (float& v : x) v = rng.normal();
        std::vector<uint16_t> w16(wf.size());
        for (size_t i = 0; i < wf.size(); ++i) w16[i] = t == DType::BF16 ? f32_to_bf16(wf[i]) : f32_to_f16(wf[i]);
        const void* data = t == DType::F32 ? static_cast<const void*>(wf.data()) : w16.data();
        std::vector<float> y(size_t(n * rows));
        matmul(x.data(), n, Matrix{t, rows, cols, data}, y.data());
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
          to_f32(t, static_cast<const uint8_t*>(data) + size_t(r * cols) * dtype_size(t), row.data(), size_t(cols));
          for (int64_t k = 0; k < n; ++k) {
            double e = 0, mag = 0;
            for (int64_t i = 0; i < cols; ++i) {
              e += double(row[size_t(i)]) * x[size_t(k * cols + i)];
              mag += std::fabs(double(row[size_t(i)]) * x[size_t(k * cols + i)]);
            }
            ASSERT_NEAR(y[size_t(k * rows + r)], e, 1e-5 * mag) << dtype_name(t) << " cols " << cols << " tokens " << n;
          }
        }
      }
}

TEST(Vec, ExpSubIsWithinTwoUlpOfExp) {
  // The vectorised e^(x − m) of the softmaxes against double-precision exp, over the whole range
  // a shifted score takes (including the underflow edge), and its double sum.
  std::vector<float> x;
  for (float v = -100.0f; v <= 0.0f; v += 0.001953125f) x.push_back(v);
  x.push_back(0.0f);
  std::vector<float> out(x.size());
  const float m = 0.5f;
  for (auto& v : x) v += m;
  const double sum = vec::exp_sub(x.data(), m, out.data(), int64_t(x.size()));
  double ref_sum = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = double(x[i]) - double(m), ref = std::exp(d);
    ref_sum += ref;
    if (d < -87.3) {
      ASSERT_EQ(out[i], 0.0f) << "x - m = " << d;
      continue;
    }
    ASSERT_NEAR(out[i], ref, 2.4e-7 * ref) << "x - m = " << d;
  }
  EXPECT_NEAR(sum, ref_sum, 1e-6 * ref_sum);
  EXPECT_EQ(out.back(), 1.0f);
}

TEST(Vec, RowsOfAnyLengthGiveEachValueAsALongRowDoes) {
  // Attention's rows end anywhere in a vector (the AVX-512 versions mask the last one): each value
  // of e^(x − m), max and scale as in a long row, the sum theirs, and nothing past the row written.
  Rng rng(3);
  std::vector<float> x(300);
  for (auto& v : x) v = -float(rng.next() % 20000) * 0.001f;
  std::vector<float> whole(x.size()), scaled(x);
  vec::exp_sub(x.data(), 0.0f, whole.data(), int64_t(x.size()));
  for (float& v : scaled) v *= 0.37f;
  for (int64_t off : {0, 1, 5}) {
    for (int64_t n = 0; n + off <= 70; ++n) {
      std::vector<float> out(size_t(n + 1), -1.0f), y(x.begin() + off, x.begin() + off + n + 1);
      const double sum = vec::exp_sub(x.data() + off, 0.0f, out.data(), n);
      double ref = 0;
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(out[size_t(i)], whole[size_t(off + i)]) << "n " << n << " i " << i;
        ref += out[size_t(i)];
      }
      EXPECT_EQ(out[size_t(n)], -1.0f) << "n " << n;
      EXPECT_NEAR(sum, ref, 1e-6 * ref) << "n " << n;
      const float m = n ? *std::max_element(x.begin() + off, x.begin() + off + n) : -INFINITY;
      EXPECT_EQ(vec::max(x.data() + off, n), m) << "n " << n;
      vec::scale(y.data(), 0.37f, n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[size_t(i)], scaled[size_t(off + i)]) << "n " << n;
      EXPECT_EQ(y[size_t(n)], x[size_t(off + n)]) << "n " << n;
    }
  }
}

// Attention's recomputed probabilities: e^(scale · x − m) in one pass equals vec::scale, then
// vec::exp_sub, bit for bit, for rows ending anywhere in a vector, in place or not, and writes
// nothing past the row.
TEST(Vec, ExpScaledIsScaleThenExpSub) {
  Rng rng(4);
  std::vector<float> x(300);
  for (auto& v : x) v = float(rng.normal()) * 6.0f;
  const float scale = 0.125f, m = *std::max_element(x.begin(), x.end()) * scale;
  for (int64_t off : {0, 3}) {
    for (int64_t n : {0, 1, 15, 16, 17, 64, 100, 295}) {
      std::vector<float> want(x.begin() + off, x.begin() + off + n);
      vec::scale(want.data(), scale, n);
      vec::exp_sub(want.data(), m, want.data(), n);
      std::vector<float> out(size_t(n + 1), -1.0f), in_place(x.begin() + off, x.begin() + off + n + 1);
      vec::exp_scaled(x.data() + off, scale, m, out.data(), n);
      vec::exp_scaled(in_place.data(), scale, m, in_place.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(out[size_t(i)], want[size_t(i)]) << "n " << n << " i " << i;
        ASSERT_EQ(in_place[size_t(i)], want[size_t(i)]) << "n " << n << " i " << i;
      }
      EXPECT_EQ(out[size_t(n)], -1.0f) << "n " << n;
      EXPECT_EQ(in_place[size_t(n)], x[size_t(off + n)]) << "n " << n;
    }
  }
}

// The fused softmax of a scaled row: each value as the spelled-out order gives it (scaled, max,
// exp_sub's exponentials, 16 lanes per 1024 values added as a tree, the chunks' sums in double, times
// 1 / sum) for rows ending anywhere in a vector and over several chunks, within 1e-6 of a double
// reference, and nothing past the row written.
TEST(Vec, SoftmaxOfAScaledRowIsTheSpelledOutOrder) {
  Rng rng(5);
  for (int64_t n : {1, 2, 15, 16, 17, 31, 33, 64, 100, 511, 1024, 1500, 2100}) {
    std::vector<float> x(size_t(n) + 1);
    for (auto& v : x) v = float(rng.normal()) * 4.0f;
    const float guard = x[size_t(n)], scale = 0.125f * 1.1f;
    std::vector<float> y(x.begin(), x.begin() + n);
    for (float& v : y) v *= scale;
    const float m = *std::max_element(y.begin(), y.end());
    std::vector<float> e(static_cast<size_t>(n));
    vec::exp_sub(y.data(), m, e.data(), n);
    double total = 0;
    for (int64_t c = 0; c < n; c += 1024) {
      float lane[16] = {};
      for (int64_t i = c; i < std::min(n, c + 1024); ++i) lane[(i - c) % 16] += e[size_t(i)];
      float s8[8], s4[4];
      for (int k = 0; k < 8; ++k) s8[k] = lane[k] + lane[k + 8];
      for (int k = 0; k < 4; ++k) s4[k] = s8[k] + s8[k + 4];
      total += (s4[0] + s4[2]) + (s4[1] + s4[3]);
    }
    double ref_z = 0;
    for (float v : y) ref_z += std::exp(double(v) - m);
    std::vector<float> out(x);
    const float lse = vec::softmax(out.data(), scale, n);
    EXPECT_EQ(lse, m + float(std::log(total))) << "n " << n;
    EXPECT_NEAR(lse, m + std::log(ref_z), 1e-5) << "n " << n;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(out[size_t(i)], e[size_t(i)] * float(1.0 / total)) << "n " << n << " i " << i;
      ASSERT_NEAR(out[size_t(i)], std::exp(double(y[size_t(i)]) - m) / ref_z, 1e-6) << "n " << n << " i " << i;
    }
    EXPECT_EQ(out[size_t(n)], guard) << "n " << n;
  }
}

TEST(Vec, SigmoidIsWithinFourUlpForEverySign) {
  std::vector<float> x;
  for (float v = -100.0f; v <= 100.0f; v += 0.00390625f) x.push_back(v);
  std::vector<float> out(x.size());
  vec::sigmoid(x.data(), out.data(), int64_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double ref = 1.0 / (1.0 + std::exp(-double(x[i])));
    if (ref < 1e-37) {  // e^x below the normal range: flushed to 0
      ASSERT_LT(out[i], 1e-37f) << "x = " << x[i];
      continue;
    }
    ASSERT_NEAR(out[i], ref, 4.8e-7 * ref) << "x = " << x[i];
  }
}

// The batched engine's promise: a token's row of matmul_rowwise is bit-identical to a batch of
// one, for every weight type and any number of tokens sharing the call.
TEST(Matmul, RowwiseRowsAreBitIdenticalToABatchOfOne) {
  Rng rng(5);
  const int64_t rows = 64;
  // 576: SmolLM2's rows (a tail step in the one-row kernels); 4608: long rows (other kernels).
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::Q6_K})
    for (int64_t cols : {int64_t(512), int64_t(576), int64_t(4608)})
    for (bool interleave : {false, true}) {
      if (cols % block_elements(t) != 0) continue;
      const DType fast = interleave ? interleaved_type(t, rows, cols) : t;
      if (interleave && fast == t) continue;  // no interleaved layout for this type on this CPU
      std::vector<uint8_t> w(size_t(rows) * row_bytes(t, cols)), wi(w.size());
      std::vector<float> v(static_cast<size_t>(cols));
      for (int64_t r = 0; r < rows; ++r) {
        for (float& e : v) e = rng.normal() * 0.05f;
        uint8_t* dst = w.data() + size_t(r) * row_bytes(t, cols);
        for (int64_t i = 0; i < cols; ++i) {
          if (t == DType::F32) std::memcpy(dst + 4 * i, &v[size_t(i)], 4);
          if (t == DType::BF16) reinterpret_cast<uint16_t*>(dst)[i] = f32_to_bf16(v[size_t(i)]);
          if (t == DType::F16) reinterpret_cast<uint16_t*>(dst)[i] = f32_to_f16(v[size_t(i)]);
        }
        if (is_quantized(t)) quantize_row(t, v.data(), dst, cols);
      }
      if (interleave) interleave_rows(t, w.data(), wi.data(), rows, cols);
      const Matrix m{fast, rows, cols, interleave ? wi.data() : w.data()};
      for (int64_t n : {int64_t(2), int64_t(5), int64_t(40), int64_t(cols > 1000 ? 9 : 300)}) {
        std::vector<float> x(size_t(n * cols)), y(size_t(n * rows)), one(static_cast<size_t>(rows));
        for (float& e : x) e = rng.normal();
        matmul_rowwise(x.data(), n, m, y.data());
        for (int64_t i = 0; i < n; ++i) {
          matmul(x.data() + i * cols, 1, m, one.data());
          ASSERT_EQ(0, std::memcmp(one.data(), y.data() + i * rows, size_t(rows) * 4))
              << dtype_name(fast) << (interleave ? " interleaved" : "") << " cols " << cols << " n " << n << " token " << i;
        }
      }
    }
}

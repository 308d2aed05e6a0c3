#include "kernels/vec.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/target_clones.h"

namespace zephyr::vec {

ZEPHYR_CLONES_V4_V3 float dot(const float* a, const float* b, int64_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

ZEPHYR_CLONES_V4_V3 void axpy(float* y, float a, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

ZEPHYR_CLONES_V4_V3 void scale(float* y, float a, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] *= a;
}

ZEPHYR_CLONES_V4_V3 float sum_squares(const float* x, int64_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

ZEPHYR_CLONES_V4_V3 float max(const float* x, int64_t n) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// e^x for x <= 0 written so that the loops below vectorise (libm's expf is a call per element,
// ~25% of a training step in the softmaxes): x = k·ln2 + r with |r| <= ln2/2 (ln2 split in two
// for an exact k·ln2), e^r by its degree-6 Taylor polynomial (error < r^7/5040 ≈ 6e-8, under one
// ulp), times 2^k built in the exponent bits.
static inline float exp_nonpositive(float x) {
  const bool tiny = x < -87.3f;  // 2^k would leave the normal range: e^x < 1.2e-38
  x = tiny ? 0.0f : x;
  const float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest (1.5·2^23 trick)
  const float r = (x - k * 0.693145751953125f) - k * 1.428606765330187e-06f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (int32_t(k) + 127) << 23;
  float two_k;
  std::memcpy(&two_k, &bits, 4);
  return tiny ? 0.0f : p * two_k;
}

ZEPHYR_CLONES_V4_V3 double exp_sub(const float* x, float m, float* out, int64_t n) {
  double total = 0;
  // Float partial sums of 1024 values, added in double. (Of 256, the 16 lanes' serial sum at the
  // end of each took ~20% of the loop's time.)
  for (int64_t i0 = 0; i0 < n; i0 += 1024) {
    const int64_t i1 = i0 + 1024 < n ? i0 + 1024 : n;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = i0; i < i1; ++i) s += out[i] = exp_nonpositive(x[i] - m);
    total += s;
  }
  return total;
}

ZEPHYR_CLONES_V4_V3 void sigmoid(const float* x, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float e = exp_nonpositive(-std::fabs(x[i]));  // e^−|x|: never overflows
    // 1 / (1 + e) or e / (1 + e) as one division of the chosen numerator (as two, each masked, GCC
    // issued both divisions for every vector).
    out[i] = (x[i] >= 0 ? 1.0f : e) / (1.0f + e);
  }
}

}  // namespace zephyr::vec

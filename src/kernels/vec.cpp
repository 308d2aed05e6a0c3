#include "kernels/vec.h"

// GCC 12 warns inside its own AVX-512 headers about variables it initialises itself (as in matmul.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <immintrin.h>

#include "core/cpu_isa.h"
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

ZEPHYR_CLONES_V4_V3 float sum_squares(const float* x, int64_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

namespace {

ZEPHYR_CLONES_V4_V3 void scale_any(float* y, float a, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] *= a;
}

ZEPHYR_CLONES_V4_V3 float max_any(const float* x, int64_t n) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

}  // namespace

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

namespace {

ZEPHYR_CLONES_V4_V3 double exp_sub_any(const float* x, float m, float* out, int64_t n) {
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

// Two loops, so that x·scale − m is not contracted into one FMA (the AVX-512 version rounds the product).
ZEPHYR_CLONES_V4_V3 void exp_scaled_any(const float* x, float scale, float m, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = exp_nonpositive(out[i] - m);
}

// The 16 lanes' sum as a fixed tree: lane k + lane k+8, then those k and k+4, k and k+2, 0 and 1
// (the order _mm512_reduce_add_ps adds them in).
inline float tree_sum16(const float* l) {
  float s8[8], s4[4];
  for (int k = 0; k < 8; ++k) s8[k] = l[k] + l[k + 8];
  for (int k = 0; k < 4; ++k) s4[k] = s8[k] + s8[k + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

ZEPHYR_CLONES_V4_V3 float softmax_any(float* x, float scale, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    x[i] *= scale;
    m = x[i] > m ? x[i] : m;
  }
  double total = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 1024) {
    const int64_t i1 = i0 + 1024 < n ? i0 + 1024 : n;
    float lane[16] = {};
    for (int64_t i = i0; i < i1; ++i) lane[(i - i0) % 16] += x[i] = exp_nonpositive(x[i] - m);
    total += tree_sum16(lane);
  }
  const float inv = float(1.0 / total);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
  return m + float(std::log(total));
}

// AVX-512 versions whose last n % 16 values run as one masked vector: GCC's loops above run them
// one at a time, and attention's rows (a few hundred scores, any length) spent ~40% of exp_sub's
// time there (a 300-value row 67 ns, a 290-value one 51). They give the same bits as the v4 clones:
// each value by the same operations (the exponential as GCC contracts exp_nonpositive into FMAs),
// and the sum in the clones' order — each lane's sum of its values, the values past the last
// whole vector added to lane 0 one by one, then the 16 lanes added in order.
#define Z_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))

Z_AVX512 inline __m512 exp_nonpositive16(__m512 x) {
  const __mmask16 ok = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_NLT_UQ);
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  const __m512 k = _mm512_maskz_sub_ps(ok, _mm512_maskz_fmadd_ps(ok, x, _mm512_set1_ps(1.44269504f), magic), magic);
  __m512 r = _mm512_maskz_fnmadd_ps(ok, k, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_maskz_fnmadd_ps(ok, k, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_maskz_fmadd_ps(ok, _mm512_set1_ps(1.0f / 720), r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_maskz_fmadd_ps(ok, p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_maskz_fmadd_ps(ok, p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_maskz_fmadd_ps(ok, p, r, _mm512_set1_ps(0.5f));
  p = _mm512_maskz_fmadd_ps(ok, p, r, _mm512_set1_ps(1.0f));
  p = _mm512_maskz_fmadd_ps(ok, p, r, _mm512_set1_ps(1.0f));
  // p · 2^k by vscalefps: one instruction where building 2^k's exponent bits and multiplying took
  // four; the same value (one rounding either way: a comparison over every float in [-100, 1]
  // found no difference).
  return _mm512_maskz_scalef_ps(ok, p, k);
}

// out = e^(x − m) over the whole vectors from i0 on below i1, their sum in 16 lanes; *i: where they end.
Z_AVX512 inline __m512 exp_sub_lanes(const float* x, __m512 mv, float* out, int64_t i0, int64_t i1, int64_t* i) {
  __m512 lanes = _mm512_setzero_ps();
  for (*i = i0; *i + 16 <= i1; *i += 16) {
    const __m512 e = exp_nonpositive16(_mm512_sub_ps(_mm512_loadu_ps(x + *i), mv));
    _mm512_storeu_ps(out + *i, e);
    lanes = _mm512_add_ps(lanes, e);
  }
  return lanes;
}

Z_AVX512 double exp_sub_avx512(const float* x, float m, float* out, int64_t n) {
  double total = 0;
  const __m512 mv = _mm512_set1_ps(m);
  for (int64_t i0 = 0; i0 < n; i0 += 1024) {
    const int64_t i1 = i0 + 1024 < n ? i0 + 1024 : n;
    int64_t i = 0;
    const __m512 lanes = exp_sub_lanes(x, mv, out, i0, i1, &i);
    alignas(64) float lane[16], rest[16];
    _mm512_store_ps(lane, lanes);
    if (i < i1) {
      const __mmask16 k = __mmask16((1u << (i1 - i)) - 1);
      const __m512 e = exp_nonpositive16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), mv));
      _mm512_mask_storeu_ps(out + i, k, e);
      _mm512_store_ps(rest, e);
      for (int64_t j = 0; j < i1 - i; ++j) lane[0] += rest[j];
    }
    float s = 0;
    for (int j = 0; j < 16; ++j) s += lane[j];
    total += s;
  }
  return total;
}

Z_AVX512 void exp_scaled_avx512(const float* x, float scale, float m, float* out, int64_t n) {
  const __m512 sv = _mm512_set1_ps(scale), mv = _mm512_set1_ps(m);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 y = _mm512_mul_ps(_mm512_loadu_ps(x + i), sv);
    _mm512_storeu_ps(out + i, exp_nonpositive16(_mm512_sub_ps(y, mv)));
  }
  if (i < n) {
    const __mmask16 k = __mmask16((1u << (n - i)) - 1);
    const __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), sv);
    _mm512_mask_storeu_ps(out + i, k, exp_nonpositive16(_mm512_sub_ps(y, mv)));
  }
}

// softmax in three passes: scaled and max, exponentials and their sum (lanes, then a tree: the
// sequential sums of exp_sub's lanes and tail took about as long as the exponentials of an
// attention row of a few hundred scores), normalised.
Z_AVX512 float softmax_avx512(float* x, float scale, int64_t n) {
  const __m512 sv = _mm512_set1_ps(scale);
  const int64_t whole = n / 16 * 16;
  const __mmask16 tail = __mmask16((1u << (n - whole)) - 1);
  __m512 mv = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < whole; i += 16) {
    const __m512 y = _mm512_mul_ps(_mm512_loadu_ps(x + i), sv);
    _mm512_storeu_ps(x + i, y);
    mv = _mm512_max_ps(mv, y);
  }
  if (tail) {
    const __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + whole), sv);
    _mm512_mask_storeu_ps(x + whole, tail, y);
    mv = _mm512_mask_max_ps(mv, tail, mv, y);
  }
  const float m = _mm512_reduce_max_ps(mv);
  const __m512 m16 = _mm512_set1_ps(m);
  double total = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 1024) {
    const int64_t i1 = i0 + 1024 < n ? i0 + 1024 : n;
    int64_t i = 0;
    __m512 lanes = exp_sub_lanes(x, m16, x, i0, i1, &i);
    if (i < i1) {
      const __mmask16 k = __mmask16((1u << (i1 - i)) - 1);
      const __m512 e = _mm512_maskz_mov_ps(k, exp_nonpositive16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m16)));
      _mm512_mask_storeu_ps(x + i, k, e);
      lanes = _mm512_add_ps(lanes, e);
    }
    total += _mm512_reduce_add_ps(lanes);
  }
  const __m512 inv = _mm512_set1_ps(float(1.0 / total));
  for (int64_t i = 0; i < whole; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
  if (tail) _mm512_mask_storeu_ps(x + whole, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + whole), inv));
  return m + float(std::log(total));
}

Z_AVX512 float max_avx512(const float* x, int64_t n) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
  if (i < n) {
    const __mmask16 k = __mmask16((1u << (n - i)) - 1);
    m = _mm512_mask_max_ps(m, k, m, _mm512_maskz_loadu_ps(k, x + i));
  }
  return _mm512_reduce_max_ps(m);
}

Z_AVX512 void scale_avx512(float* y, float a, int64_t n) {
  const __m512 av = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), av));
  if (i < n) {
    const __mmask16 k = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + i), av));
  }
}

bool avx512() { return cpu_isa() >= CpuIsa::kAvx512; }

}  // namespace

double exp_sub(const float* x, float m, float* out, int64_t n) {
  return avx512() ? exp_sub_avx512(x, m, out, n) : exp_sub_any(x, m, out, n);
}

void exp_scaled(const float* x, float scale, float m, float* out, int64_t n) {
  avx512() ? exp_scaled_avx512(x, scale, m, out, n) : exp_scaled_any(x, scale, m, out, n);
}

float softmax(float* x, float scale, int64_t n) { return avx512() ? softmax_avx512(x, scale, n) : softmax_any(x, scale, n); }

float max(const float* x, int64_t n) { return avx512() ? max_avx512(x, n) : max_any(x, n); }

void scale(float* y, float a, int64_t n) { avx512() ? scale_avx512(y, a, n) : scale_any(y, a, n); }

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

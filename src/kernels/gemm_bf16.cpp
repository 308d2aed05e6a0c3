#include "kernels/gemm_bf16.h"

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "core/parallel.h"

// GCC 12 warns inside its own AVX-512 headers about variables it initialises itself.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace zephyr {

namespace {

constexpr int64_t MR = 8, NR = 32;  // micro-tile: 8 rows x 32 columns = 16 zmm accumulators

#define Z_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// Packs rows [r0, r0 + R) of a matrix into k-pairs, out[p][r][2] = (x[r][2p], x[r][2p+1]) as bf16
// (round to nearest even), zero-padded past the matrix; 16 packed pairs per store. For a matrix stored with
// rows contiguous in k (x[r * ld + k]) the 16 pairs of one row are scattered R apart; for one
// stored [K, rows] (x[k * ld + r]) two k-rows give the pairs of 16 rows in one contiguous store.
Z_BF16 void pack_pairs_avx512(const float* x, int64_t ld, bool k_major, int64_t rows, int64_t r0, int64_t R, int64_t K,
                              uint16_t* out) {
  const int64_t pairs = (K + 1) / 2;
  auto* out32 = reinterpret_cast<int32_t*>(out);
  if (!k_major) {
    const __m512i stride = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                              _mm512_set1_epi32(int(R)));
    for (int64_t r = 0; r < R; ++r) {
      const int64_t row = r0 + r;
      for (int64_t p = 0; p < pairs; p += 16) {
        const int64_t k = 2 * p, nk = std::min<int64_t>(32, K - k);
        const __mmask16 m0 = row < rows ? __mmask16((nk >= 16 ? 0xffffu : (1u << nk) - 1)) : 0;
        const __mmask16 m1 = row < rows && nk > 16 ? __mmask16((nk >= 32 ? 0xffffu : (1u << (nk - 16)) - 1)) : 0;
        const float* src = x + (row < rows ? row : 0) * ld + k;
        const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + 16), _mm512_maskz_loadu_ps(m0, src));
        const int64_t np = std::min<int64_t>(16, pairs - p);
        _mm512_mask_i32scatter_epi32(out32 + p * R + r, __mmask16((np >= 16 ? 0xffffu : (1u << np) - 1)), stride, (__m512i)v, 4);
      }
    }
    return;
  }
  for (int64_t p = 0; p < pairs; ++p)
    for (int64_t r = 0; r < R; r += 16) {
      const int64_t row = r0 + r, nr = std::min<int64_t>(16, std::min(R - r, rows - row));
      const __mmask16 m = nr > 0 ? __mmask16((nr >= 16 ? 0xffffu : (1u << nr) - 1)) : 0;
      const __m512 k0 = _mm512_maskz_loadu_ps(m, x + (2 * p) * ld + (nr > 0 ? row : 0));
      const __m512 k1 = 2 * p + 1 < K ? _mm512_maskz_loadu_ps(m, x + (2 * p + 1) * ld + (nr > 0 ? row : 0)) : _mm512_setzero_ps();
      const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(k0));
      const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(k1));
      const int64_t width = std::min<int64_t>(16, R - r);
      _mm512_mask_storeu_epi32(out32 + p * R + r, __mmask16((width >= 16 ? 0xffffu : (1u << width) - 1)),
                               _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
}

// acc[8][2] over all k-pairs: A panel [pairs][8][2], B panel [pairs][32][2].
Z_BF16 void micro_kernel(const uint16_t* ap, const uint16_t* bp, int64_t pairs, float* c, int64_t ldc, int64_t rows,
                         int64_t cols, bool accumulate) {
  __m512 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp + p * NR * 2);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + p * NR * 2 + 32);
    const uint32_t* a = reinterpret_cast<const uint32_t*>(ap + p * MR * 2);
    for (int i = 0; i < MR; ++i) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(int(a[i]));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
    }
  }
  for (int64_t i = 0; i < rows; ++i)
    for (int h = 0; h < 2; ++h) {
      const int64_t n = std::min<int64_t>(16, cols - 16 * h);
      if (n <= 0) continue;
      const __mmask16 m = __mmask16((1u << n) - 1);
      float* dst = c + i * ldc + 16 * h;
      __m512 v = acc[i][h];
      if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, dst));
      _mm512_mask_storeu_ps(dst, m, v);
    }
}

}  // namespace

bool gemm_bf16_available() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512bf16");
  return ok;
}

void gemm_bf16(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, bool transpose_a, const float* b, int64_t ldb,
               bool transpose_b, float* c, int64_t ldc, bool accumulate) {
  const int64_t pairs = (K + 1) / 2, mp = (M + MR - 1) / MR, np = (N + NR - 1) / NR;
  std::vector<uint16_t> apack(size_t(mp * pairs * MR * 2)), bpack(size_t(np * pairs * NR * 2));
  parallel_for(size_t(mp), 1, [&](size_t p0, size_t p1) {
    for (size_t p = p0; p < p1; ++p)
      pack_pairs_avx512(a, lda, transpose_a, M, int64_t(p) * MR, MR, K, apack.data() + p * size_t(pairs * MR * 2));
  });
  parallel_for(size_t(np), 1, [&](size_t p0, size_t p1) {
    for (size_t p = p0; p < p1; ++p)
      pack_pairs_avx512(b, ldb, transpose_b, N, int64_t(p) * NR, NR, K, bpack.data() + p * size_t(pairs * NR * 2));
  });
  // Column panels split across threads; each streams its B panels against every A panel.
  parallel_for(size_t(np), 1, [&](size_t q0, size_t q1) {
    for (size_t q = q0; q < q1; ++q)
      for (int64_t p = 0; p < mp; ++p)
        micro_kernel(apack.data() + p * pairs * MR * 2, bpack.data() + int64_t(q) * pairs * NR * 2, pairs,
                     c + p * MR * ldc + int64_t(q) * NR, ldc, std::min(MR, M - p * MR), std::min(NR, N - int64_t(q) * NR),
                     accumulate);
  });
}

}  // namespace zephyr

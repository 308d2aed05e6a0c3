// What the bf16 and fp32 GEMMs (kernels/gemm_bf16.cpp, kernels/gemm_f32.cpp) share: the 16 x 16
// transpose of their packing, which lays a matrix's values out by k, and the store of their 8 x 32
// micro-tiles' rows into C.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace zephyr {

// r[i][j] -> r[j][i] for 16 registers of 16 int32.
__attribute__((target("avx512f"))) inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  // Now each 128-bit lane of u[4g + j] holds column (4 * lane + j) of rows 4g..4g+3.
  __m512i u[16];
  for (int g = 0; g < 4; ++g) {
    const __m512i* s = t + 4 * g;
    u[4 * g + 0] = _mm512_unpacklo_epi64(s[0], s[2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(s[0], s[2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(s[1], s[3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(s[1], s[3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xdd);
    const __m512i w0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88), w1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xdd);
    r[j] = _mm512_shuffle_i32x4(v0, w0, 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(v0, w0, 0xdd);
    r[4 + j] = _mm512_shuffle_i32x4(v1, w1, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(v1, w1, 0xdd);
  }
}

// The masks of a tile row's two registers for a tile `cols` wide (up to 32): C's columns past its
// edge are neither read nor written.
inline void tile_masks(int64_t cols, __mmask16& m0, __mmask16& m1) {
  m0 = __mmask16(cols >= 16 ? 0xffffu : (1u << cols) - 1);
  m1 = __mmask16(cols >= 32 ? 0xffffu : cols > 16 ? (1u << (cols - 16)) - 1 : 0);
}

// A tile row's 32 sums (v0, v1) stored over C's row at dst, or added to it (accumulate).
__attribute__((target("avx512f"))) inline void store_tile_row(float* dst, __m512 v0, __m512 v1, __mmask16 m0, __mmask16 m1,
                                                              bool accumulate) {
  if (accumulate) {
    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, dst));
    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, dst + 16));
  }
  _mm512_mask_storeu_ps(dst, m0, v0);
  _mm512_mask_storeu_ps(dst + 16, m1, v1);
}

}  // namespace zephyr

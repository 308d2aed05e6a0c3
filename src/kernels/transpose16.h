// A 16 x 16 block of 32-bit values transposed in AVX-512 registers: the packing step of the bf16 and
// fp32 GEMMs (kernels/gemm_bf16.cpp, kernels/gemm_f32.cpp), which lay a matrix's values out by k.
#pragma once
#include <immintrin.h>

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

}  // namespace zephyr

// The integer products on AVX-512 VNNI for plain (not interleaved) rows, 64 elements per step,
// and the rows' vectorised dequantization. See isa.h for the arithmetic.

// GCC 12 warns inside its own AVX-512 headers about variables it initialises itself.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <cstring>
#include <type_traits>

#include "kernels/quant/interleave.h"
#include "kernels/quant/isa.h"

namespace zephyr::quant {

namespace {

// [a ×8, b ×8] from two f16 values: one conversion and one permute.
Z_VNNI inline __m512 pair_f16(uint16_t a, uint16_t b) {
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128(int(uint32_t(a) | (uint32_t(b) << 16))));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), _mm512_castps128_ps512(f));
}

// The permute index [i ×8, i + 1 ×8], i in 0..14.
Z_VNNI inline __m512i pair_index(int i) {
  alignas(64) static const int32_t idx[15][16] = {
#define Z_ROW(i) {i, i, i, i, i, i, i, i, i + 1, i + 1, i + 1, i + 1, i + 1, i + 1, i + 1, i + 1}
      Z_ROW(0), Z_ROW(1), Z_ROW(2),  Z_ROW(3),  Z_ROW(4),  Z_ROW(5),  Z_ROW(6),  Z_ROW(7),
      Z_ROW(8), Z_ROW(9), Z_ROW(10), Z_ROW(11), Z_ROW(12), Z_ROW(13), Z_ROW(14)};
#undef Z_ROW
  return _mm512_load_si512(idx[i]);
}

// The block's 8 sub-block scales d·sc and 8 offsets −dmin·m as one vector.
Z_VNNI inline __m512 q4k_scales_offsets(const BlockQ4_K& b) {
  const __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q4k_scale_bytes(b)));
  const __m512 mult = _mm512_insertf32x8(_mm512_set1_ps(_cvtsh_ss(b.d)), _mm256_set1_ps(-_cvtsh_ss(b.dmin)), 1);
  return _mm512_mul_ps(f, mult);
}

// The unsigned values, scales and offsets of 64 consecutive elements starting at element e.
struct Step512 {
  __m512i u;
  __m512 s, m;
  __m512 all;  // Q4_K: the block's 8 scales and 8 offsets
};

template <DType T>
Z_VNNI inline Step512 unpack512(const uint8_t* row, int64_t e, float* cache) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  Step512 r;
  if constexpr (T == DType::Q4_0 || T == DType::Q4_1) {
    using B = std::conditional_t<T == DType::Q4_0, BlockQ4_0, BlockQ4_1>;
    const B* b = reinterpret_cast<const B*>(row) + e / 32;
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].q));
    const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].q));
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(q0, q0)), _mm256_set_m128i(q1, q1), 1);
    r.u = _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)), m4);
    r.s = pair_f16(b[0].d, b[1].d);
    if constexpr (T == DType::Q4_1) r.m = pair_f16(b[0].m, b[1].m);
  } else if constexpr (T == DType::Q8_0) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(row) + e / 32;
    const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].q));
    const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].q));
    r.u = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1), _mm512_set1_epi8(char(0x80)));
    r.s = pair_f16(b[0].d, b[1].d);
  } else if constexpr (T == DType::Q4_K) {
    const BlockQ4_K& b = reinterpret_cast<const BlockQ4_K*>(row)[e / 256];
    const int c = int(e % 256) / 64;
    if (c == 0) _mm512_storeu_ps(cache, q4k_scales_offsets(b));
    const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q + 32 * c)));
    r.u = _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0)), m4);
    r.all = _mm512_loadu_ps(cache);  // 8 scales, then 8 offsets
    r.s = _mm512_permutexvar_ps(pair_index(2 * c), r.all);
  } else {  // Q6_K: steps 0, 1 read the low nibbles of a 128-element chunk, steps 2, 3... see q6k_value
    const BlockQ6_K& b = reinterpret_cast<const BlockQ6_K*>(row)[e / 256];
    const int s = int(e % 256) / 64, n = s / 2, h = s % 2;
    const __m512i lo = _mm512_loadu_si512(b.ql + 64 * n);
    const __m512i low = _mm512_and_si512(h ? _mm512_srli_epi16(lo, 4) : lo, m4);
    const __m512i hq = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * n)));
    const __m512i shift = h ? _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4) : _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
    const __m512i high = _mm512_and_si512(_mm512_srlv_epi64(hq, shift), _mm512_set1_epi8(3));
    r.u = _mm512_or_si512(low, _mm512_slli_epi16(high, 4));
    // The block's 16 scales times d, once per block (per step it cost ~5 of the ~20 operations);
    // element 64s + i uses scale (64s + i) / 16: lane L (4 elements) takes scale 4s + L / 4.
    if (s == 0) {
      const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
      _mm512_storeu_ps(cache, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)), _mm512_set1_ps(_cvtsh_ss(b.d))));
    }
    const __m512i lane_scale = _mm512_add_epi32(_mm512_srli_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 2),
                                                _mm512_set1_epi32(4 * s));
    r.s = _mm512_permutexvar_ps(lane_scale, _mm512_loadu_ps(cache));
  }
  return r;
}

template <DType T>
Z_VNNI inline void step512(const Step512& st, const QuantizedActivations& a, int64_t e, __m512& acc_s, __m512& acc_m) {
  const __m512i x = _mm512_loadu_si512(a.q.data() + e);
  const __m512 ld = _mm512_loadu_ps(a.lane_d.data() + e / 4);
  if constexpr (offset_index<T>() >= 0) {  // Σ(u − k)·q straight from the multiply-add
    const __m512i init = _mm512_loadu_si512(a.lane_off[offset_index<T>()].data() + e / 4);
    acc_s = _mm512_fmadd_ps(st.s, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(init, st.u, x)), ld), acc_s);
  } else if constexpr (T == DType::Q4_K) {
    const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), st.u, x);
    acc_s = _mm512_fmadd_ps(st.s, _mm512_mul_ps(_mm512_cvtepi32_ps(dot), ld), acc_s);
    // The offsets once per block: its 8 (−dmin·m) times the sub-blocks' d·Σq.
    if (e % 256 == 0) acc_m = _mm512_fmadd_ps(st.all, _mm512_loadu_ps(a.k_sums.data() + e / 16), acc_m);
  } else {
    const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), st.u, x);
    acc_s = _mm512_fmadd_ps(st.s, _mm512_mul_ps(_mm512_cvtepi32_ps(dot), ld), acc_s);
    acc_m = _mm512_fmadd_ps(st.m, _mm512_loadu_ps(a.lane_s.data() + e / 4), acc_m);
  }
}

template <DType T>
Z_VNNI float row_dot_vnni(const uint8_t* row, const QuantizedActivations& a) {
  __m512 s0 = _mm512_setzero_ps(), m0 = s0, s1 = s0, m1 = s0;
  float cache[16];
  int64_t e = 0;
  // Two steps per iteration on separate accumulators: the FMA latency stays hidden.
  for (; e + 128 <= a.n; e += 128) {
    step512<T>(unpack512<T>(row, e, cache), a, e, s0, m0);
    step512<T>(unpack512<T>(row, e + 64, cache), a, e + 64, s1, m1);
  }
  for (; e < a.n; e += 64) step512<T>(unpack512<T>(row, e, cache), a, e, s0, m0);
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, m0), _mm512_add_ps(s1, m1)));
}

// [a ×4, b ×4, c ×4, d ×4] from four f16 values.
Z_VNNI inline __m512 quad_f16(uint16_t a, uint16_t b, uint16_t c, uint16_t d) {
  const uint64_t bits = uint64_t(a) | (uint64_t(b) << 16) | (uint64_t(c) << 32) | (uint64_t(d) << 48);
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128(int64_t(bits)));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), _mm512_castps128_ps512(f));
}

// Q4_0/Q4_1 rows for one token, 4 blocks per step: each block's 16 bytes fill a 128-bit lane, so
// the nibbles unpack with one shift and two masks, against activations in the same order (q4).
struct StepQ4x4 {
  __m512i lo, hi;
  __m512 s, m;
};

template <DType T>
Z_VNNI inline StepQ4x4 unpack_q4x4(const uint8_t* row, int64_t e) {
  using B = std::conditional_t<T == DType::Q4_0, BlockQ4_0, BlockQ4_1>;
  const B* b = reinterpret_cast<const B*>(row) + e / 32;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].q)));
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].q)), 1);
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[2].q)), 2);
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[3].q)), 3);
  StepQ4x4 st;
  st.lo = _mm512_and_si512(v, m4);
  st.hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
  st.s = quad_f16(b[0].d, b[1].d, b[2].d, b[3].d);
  if constexpr (T == DType::Q4_1) st.m = quad_f16(b[0].m, b[1].m, b[2].m, b[3].m);
  return st;
}

template <DType T>
Z_VNNI inline void accumulate_q4x4(const StepQ4x4& st, const QuantizedActivations& a, int64_t e, __m512& acc_s, __m512& acc_m) {
  const __m512i init = T == DType::Q4_0 ? _mm512_loadu_si512(a.q4_lane_off.data() + e / 8) : _mm512_setzero_si512();
  __m512i dot = _mm512_dpbusd_epi32(init, st.lo, _mm512_loadu_si512(a.q4.data() + e));
  dot = _mm512_dpbusd_epi32(dot, st.hi, _mm512_loadu_si512(a.q4.data() + e + 64));
  acc_s = _mm512_fmadd_ps(st.s, _mm512_mul_ps(_mm512_cvtepi32_ps(dot), _mm512_loadu_ps(a.q4_lane_d.data() + e / 8)), acc_s);
  if constexpr (T == DType::Q4_1) acc_m = _mm512_fmadd_ps(st.m, _mm512_loadu_ps(a.q4_lane_s.data() + e / 8), acc_m);
}

template <DType T>
Z_VNNI inline void step_q4x4(const uint8_t* row, const QuantizedActivations& a, int64_t e, __m512& acc_s, __m512& acc_m) {
  accumulate_q4x4<T>(unpack_q4x4<T>(row, e), a, e, acc_s, acc_m);
}

template <DType T>
Z_VNNI float row_dot_q4x4(const uint8_t* row, const QuantizedActivations& a) {
  __m512 s0 = _mm512_setzero_ps(), m0 = s0, s1 = s0, m1 = s0;
  int64_t e = 0;
  for (; e + 256 <= a.n; e += 256) {
    step_q4x4<T>(row, a, e, s0, m0);
    step_q4x4<T>(row, a, e + 128, s1, m1);
  }
  for (; e < a.n; e += 128) step_q4x4<T>(row, a, e, s0, m0);
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, m0), _mm512_add_ps(s1, m1)));
}

// NT tokens through exactly row_dot_q4x4's arithmetic (the same steps into the same accumulators,
// in the same order, the same final sum), the row unpacked once for all of them: each token's
// result is bit-identical to a call for it alone (the batched engine's invariance).
template <DType T, int NT>
Z_VNNI void row_dot_q4x4_tokens(const uint8_t* row, const QuantizedActivations* a, float* out, int64_t out_stride) {
  __m512 s0[NT], m0[NT], s1[NT], m1[NT];
  for (int t = 0; t < NT; ++t) s0[t] = m0[t] = s1[t] = m1[t] = _mm512_setzero_ps();
  const int64_t n = a[0].n;
  int64_t e = 0;
  for (; e + 256 <= n; e += 256) {
    const StepQ4x4 p = unpack_q4x4<T>(row, e), q = unpack_q4x4<T>(row, e + 128);
    for (int t = 0; t < NT; ++t) {
      accumulate_q4x4<T>(p, a[t], e, s0[t], m0[t]);
      accumulate_q4x4<T>(q, a[t], e + 128, s1[t], m1[t]);
    }
  }
  for (; e < n; e += 128) {
    const StepQ4x4 p = unpack_q4x4<T>(row, e);
    for (int t = 0; t < NT; ++t) accumulate_q4x4<T>(p, a[t], e, s0[t], m0[t]);
  }
  for (int t = 0; t < NT; ++t)
    out[t * out_stride] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0[t], m0[t]), _mm512_add_ps(s1[t], m1[t])));
}

// The same for row_dot_vnni.
template <DType T, int NT>
Z_VNNI void row_dot_vnni_same_tokens(const uint8_t* row, const QuantizedActivations* a, float* out, int64_t out_stride) {
  __m512 s0[NT], m0[NT], s1[NT], m1[NT];
  for (int t = 0; t < NT; ++t) s0[t] = m0[t] = s1[t] = m1[t] = _mm512_setzero_ps();
  float cache[16];
  const int64_t n = a[0].n;
  int64_t e = 0;
  for (; e + 128 <= n; e += 128) {
    const Step512 p = unpack512<T>(row, e, cache);
    for (int t = 0; t < NT; ++t) step512<T>(p, a[t], e, s0[t], m0[t]);
    const Step512 q = unpack512<T>(row, e + 64, cache);
    for (int t = 0; t < NT; ++t) step512<T>(q, a[t], e + 64, s1[t], m1[t]);
  }
  for (; e < n; e += 64) {
    const Step512 p = unpack512<T>(row, e, cache);
    for (int t = 0; t < NT; ++t) step512<T>(p, a[t], e, s0[t], m0[t]);
  }
  for (int t = 0; t < NT; ++t)
    out[t * out_stride] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0[t], m0[t]), _mm512_add_ps(s1[t], m1[t])));
}

// NT tokens against one row: the weights are unpacked once per step for all of them (prefill).
template <DType T, int NT>
Z_VNNI void row_dot_vnni_tokens(const uint8_t* row, const QuantizedActivations* a, float* out, int64_t out_stride) {
  __m512 acc_s[NT], acc_m[NT];
  for (int t = 0; t < NT; ++t) acc_s[t] = acc_m[t] = _mm512_setzero_ps();
  float cache[16];
  for (int64_t e = 0; e < a[0].n; e += 64) {
    const Step512 st = unpack512<T>(row, e, cache);
    for (int t = 0; t < NT; ++t) step512<T>(st, a[t], e, acc_s[t], acc_m[t]);
  }
  for (int t = 0; t < NT; ++t) out[t * out_stride] = _mm512_reduce_add_ps(_mm512_add_ps(acc_s[t], acc_m[t]));
}

// R rows against one token: the activation loads (which outweigh the weights' bytes for the
// K-quants, and spill out of L1 for rows of 14336) are shared by the R rows.
template <DType T, int R>
Z_VNNI void rows_dot_vnni(const uint8_t* row0, size_t stride, const QuantizedActivations& a, float* y) {
  __m512 acc_s[R], acc_m[R];
  for (int i = 0; i < R; ++i) acc_s[i] = acc_m[i] = _mm512_setzero_ps();
  float cache[R][16];
  for (int64_t e = 0; e < a.n; e += 64) {
    const __m512i x = _mm512_loadu_si512(a.q.data() + e);
    const __m512 ld = _mm512_loadu_ps(a.lane_d.data() + e / 4);
    if constexpr (offset_index<T>() >= 0) {
      const __m512i init = _mm512_loadu_si512(a.lane_off[offset_index<T>()].data() + e / 4);
      for (int i = 0; i < R; ++i) {
        const Step512 st = unpack512<T>(row0 + size_t(i) * stride, e, cache[i]);
        acc_s[i] = _mm512_fmadd_ps(st.s, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(init, st.u, x)), ld), acc_s[i]);
      }
    } else if constexpr (T == DType::Q4_K) {
      for (int i = 0; i < R; ++i) step512<T>(unpack512<T>(row0 + size_t(i) * stride, e, cache[i]), a, e, acc_s[i], acc_m[i]);
    } else {
      const __m512 ls = _mm512_loadu_ps(a.lane_s.data() + e / 4);
      for (int i = 0; i < R; ++i) {
        const Step512 st = unpack512<T>(row0 + size_t(i) * stride, e, cache[i]);
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), st.u, x);
        acc_s[i] = _mm512_fmadd_ps(st.s, _mm512_mul_ps(_mm512_cvtepi32_ps(dot), ld), acc_s[i]);
        acc_m[i] = _mm512_fmadd_ps(st.m, ls, acc_m[i]);
      }
    }
  }
  for (int i = 0; i < R; ++i) y[i] = _mm512_reduce_add_ps(_mm512_add_ps(acc_s[i], acc_m[i]));
}

// Dequantization of whole rows for the prefill GEMM (16 values per vector).
Z_VNNI inline void store_affine(float* out, __m128i bytes16, bool is_signed, __m512 s, __m512 m) {
  const __m512i v = is_signed ? _mm512_cvtepi8_epi32(bytes16) : _mm512_cvtepu8_epi32(bytes16);
  _mm512_storeu_ps(out, _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), s, m));
}

// One 32-element block of Q4_0 (scale d, nibbles q) or Q8_0 (d, int8 q).
Z_VNNI inline void dequant_block32(bool q8, uint16_t dh, const uint8_t* q, float* out) {
  const __m512 d = _mm512_set1_ps(_cvtsh_ss(dh));
  if (q8) {
    const __m512 zero = _mm512_setzero_ps();
    store_affine(out, _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), true, d, zero);
    store_affine(out + 16, _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16)), true, d, zero);
    return;
  }
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), m4 = _mm_set1_epi8(0x0F);
  const __m512 m = _mm512_mul_ps(d, _mm512_set1_ps(-8.0f));
  store_affine(out, _mm_and_si128(v, m4), false, d, m);
  store_affine(out + 16, _mm_and_si128(_mm_srli_epi16(v, 4), m4), false, d, m);
}

// One Q4_K block of 256 elements.
Z_VNNI inline void dequant_q4k_block(const BlockQ4_K& k, float* out) {
  const __m128i m4 = _mm_set1_epi8(0x0F);
  const __m512 all = q4k_scales_offsets(k);
  for (int c = 0; c < 4; ++c)
    for (int h = 0; h < 2; ++h) {  // sub-block 2c (low nibbles), 2c + 1 (high)
      const int j = 2 * c + h;
      const __m512 sc = _mm512_permutexvar_ps(_mm512_set1_epi32(j), all);
      const __m512 mn = _mm512_permutexvar_ps(_mm512_set1_epi32(8 + j), all);
      for (int half = 0; half < 2; ++half) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(k.q + 32 * c + 16 * half));
        store_affine(out + 32 * j + 16 * half, _mm_and_si128(h ? _mm_srli_epi16(v, 4) : v, m4), false, sc, mn);
      }
    }
}

Z_VNNI void dequantize_rows_avx512(DType t, const uint8_t* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1, float* out) {
  const int64_t nb32 = cols / 32;
  for (int64_t r = r0; r < r1; ++r, out += cols) {
    if (is_interleaved(t)) {  // not on the prefill path (the interleaved types have integer kernels)
      dequantize_interleaved_row(t, w, rows, r, cols, out);
      continue;
    }
    const uint8_t* row = w + size_t(r) * row_bytes(t, cols);
    if (t == DType::Q4_0 || t == DType::Q8_0) {
      const size_t bb = block_bytes(t);
      for (int64_t b = 0; b < nb32; ++b) {
        uint16_t dh;
        std::memcpy(&dh, row + size_t(b) * bb, 2);
        dequant_block32(t == DType::Q8_0, dh, row + size_t(b) * bb + 2, out + 32 * b);
      }
    } else if (t == DType::Q4_K) {
      for (int64_t b = 0; b < cols / 256; ++b) dequant_q4k_block(reinterpret_cast<const BlockQ4_K*>(row)[b], out + 256 * b);
    } else if (t == DType::Q6_K) {
      float cache[16];
      for (int64_t e = 0; e < cols; e += 64) {
        const Step512 st = unpack512<DType::Q6_K>(row, e, cache);
        alignas(64) float sc[16];
        _mm512_store_ps(sc, st.s);  // one scale per lane of 4: lanes 0, 4, 8, 12 start the 16-groups
        alignas(64) uint8_t bytes[64];
        _mm512_store_si512(bytes, st.u);
        for (int k = 0; k < 4; ++k) {
          const __m512 s = _mm512_set1_ps(sc[4 * k]);
          store_affine(out + e + 16 * k, _mm_load_si128(reinterpret_cast<const __m128i*>(bytes + 16 * k)), false, s,
                       _mm512_mul_ps(s, _mm512_set1_ps(-32.0f)));
        }
      }
    } else {
      dequantize_row(t, row, out, cols);
    }
  }
}

// Long rows: the activations no longer fit in L1, so 4 rows share their loads (rows_dot_vnni).
// Short rows stream best one at a time (one sequential stream for the prefetcher).
template <DType T>
constexpr bool shares_activations(int64_t n) {
  return (T == DType::Q4_K || T == DType::Q6_K || T == DType::Q8_0) && n > 4096;
}

template <DType T>
void gemv_typed(const uint8_t* w, size_t stride, const QuantizedActivations& x, int64_t r0, int64_t r1, float* y) {
  int64_t r = r0;
  if (shares_activations<T>(x.n))
    for (; r + 4 <= r1; r += 4) rows_dot_vnni<T, 4>(w + size_t(r) * stride, stride, x, y + r);
  for (; r < r1; ++r) {
    const uint8_t* row = w + size_t(r) * stride;
    if constexpr (T == DType::Q4_0 || T == DType::Q4_1)
      if (!x.q4.empty()) {
        y[r] = row_dot_q4x4<T>(row, x);
        continue;
      }
    y[r] = row_dot_vnni<T>(row, x);
  }
}

// Every token's rows exactly as gemv_typed computes them for that token alone; where it takes the
// one-row kernels, 4 tokens share each row's unpacking.
template <DType T>
void gemv_tokens_typed(const uint8_t* w, size_t stride, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1,
                       float* y, int64_t ldy) {
  if (shares_activations<T>(x[0].n)) {
    for (int64_t t = 0; t < ntok; ++t) gemv_typed<T>(w, stride, x[t], r0, r1, y + t * ldy);
    return;
  }
  const bool q4 = (T == DType::Q4_0 || T == DType::Q4_1) && !x[0].q4.empty();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + size_t(r) * stride;
    int64_t t = 0;
    if constexpr (T == DType::Q4_0 || T == DType::Q4_1)
      if (q4) {
        for (; t + 4 <= ntok; t += 4) row_dot_q4x4_tokens<T, 4>(row, x + t, y + t * ldy + r, ldy);
        for (; t < ntok; ++t) row_dot_q4x4_tokens<T, 1>(row, x + t, y + t * ldy + r, ldy);
        continue;
      }
    for (; t + 4 <= ntok; t += 4) row_dot_vnni_same_tokens<T, 4>(row, x + t, y + t * ldy + r, ldy);
    for (; t < ntok; ++t) row_dot_vnni_same_tokens<T, 1>(row, x + t, y + t * ldy + r, ldy);
  }
}

// Tokens in groups of 4 for every row of the range: the rows stay in cache while the activations
// stream past them.
template <DType T>
void gemm_typed(const uint8_t* w, size_t stride, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1, float* y,
                int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= ntok; t += 4)
    for (int64_t r = r0; r < r1; ++r) row_dot_vnni_tokens<T, 4>(w + size_t(r) * stride, x + t, y + t * ldy + r, ldy);
  for (; t < ntok; ++t)
    for (int64_t r = r0; r < r1; ++r) row_dot_vnni_tokens<T, 1>(w + size_t(r) * stride, x + t, y + t * ldy + r, ldy);
}

}  // namespace

void gemv_vnni(DType t, const uint8_t* w, size_t stride, const QuantizedActivations& x, int64_t r0, int64_t r1, float* y) {
  with_block_type(t, [&](auto T) { gemv_typed<decltype(T)::value>(w, stride, x, r0, r1, y); });
}

void gemv_tokens_vnni(DType t, const uint8_t* w, size_t stride, const QuantizedActivations* x, int64_t ntok, int64_t r0,
                      int64_t r1, float* y, int64_t ldy) {
  with_block_type(t, [&](auto T) { gemv_tokens_typed<decltype(T)::value>(w, stride, x, ntok, r0, r1, y, ldy); });
}

void gemm_vnni(DType t, const uint8_t* w, size_t stride, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1,
               float* y, int64_t ldy) {
  with_block_type(t, [&](auto T) { gemm_typed<decltype(T)::value>(w, stride, x, ntok, r0, r1, y, ldy); });
}

void dequantize_rows_vnni(DType t, const uint8_t* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1, float* out) {
  dequantize_rows_avx512(t, w, rows, cols, r0, r1, out);
}

}  // namespace zephyr::quant

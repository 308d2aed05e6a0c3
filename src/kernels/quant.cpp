#include "kernels/quant.h"

// GCC 12 warns inside its own AVX-512 headers about variables it initialises itself.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include "core/error.h"

namespace zephyr {

namespace {

float h2f(uint16_t h) { return f16_to_f32(h); }

// The 6-bit scale and min of sub-block j of a Q4_K block (bytes 0-3: scales 0-3 and the top bits
// of scales 4-7, bytes 4-7 the same for mins, bytes 8-11 the low nibbles of scales/mins 4-7).
void q4k_scale_min(const uint8_t* s, int j, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// The unsigned 6-bit value of element i (0..255) of a Q6_K block.
int q6k_value(const BlockQ6_K& b, int i) {
  const int n = i / 128, r = i % 128, l = r % 32, part = r / 32;  // part 0..3 of a 128-chunk
  const uint8_t lo = b.ql[64 * n + l + (part & 1) * 32];
  const int low = part < 2 ? (lo & 0xF) : (lo >> 4);
  const int high = (b.qh[32 * n + l] >> (2 * part)) & 3;
  return low | (high << 4);
}

// Round half away from zero, as C's roundf (ggml's Q8_0 reference rounds so).
int round_away(float v) { return int(std::round(v)); }

void quantize_q8_0(const float* x, BlockQ8_0* out, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    for (int i = 0; i < 32; ++i) out[b].q[i] = int8_t(round_away(x[i] * id));
  }
}

// The element of largest magnitude, with its sign (the first one on ties).
float signed_absmax(const float* x, int n) {
  float best = 0, v = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > best) best = std::fabs(x[i]), v = x[i];
  return v;
}

void quantize_q4_0(const float* x, BlockQ4_0* out, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    const float d = signed_absmax(x, 32) / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    uint8_t q[32];
    for (int i = 0; i < 32; ++i) {
      const float t = x[i] * id;
      q[i] = uint8_t(std::min(15, int(t + 8.5f)));
    }
    for (int j = 0; j < 16; ++j) out[b].q[j] = uint8_t(q[j] | (q[j + 16] << 4));
  }
}

void quantize_q4_1(const float* x, BlockQ4_1* out, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < 32; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
    const float d = (hi - lo) / 15.0f, id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    out[b].m = f32_to_f16(lo);
    uint8_t q[32];
    for (int i = 0; i < 32; ++i) {
      const float t = (x[i] - lo) * id;
      q[i] = uint8_t(std::clamp(int(t + 0.5f), 0, 15));
    }
    for (int j = 0; j < 16; ++j) out[b].q[j] = uint8_t(q[j] | (q[j + 16] << 4));
  }
}

// Q4_K: per sub-block the range [min(0, lo), hi] in 15 steps; the 8 scales and mins are then
// themselves quantized to 6 bits against the block's d and dmin.
void quantize_q4_k(const float* x, BlockQ4_K* out, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 256) {
    float scale[8], mn[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      float lo = 0, hi = x[32 * j];
      for (int i = 0; i < 32; ++i) lo = std::min(lo, x[32 * j + i]), hi = std::max(hi, x[32 * j + i]);
      scale[j] = std::max(hi - lo, 0.0f) / 15.0f;
      mn[j] = -lo;
      max_scale = std::max(max_scale, scale[j]);
      max_min = std::max(max_min, mn[j]);
    }
    BlockQ4_K& o = out[b];
    o.d = f32_to_f16(max_scale / 63.0f);
    o.dmin = f32_to_f16(max_min / 63.0f);
    const float d = h2f(o.d), dmin = h2f(o.dmin);
    int sc[8], m[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = d > 0 ? std::clamp(int(std::nearbyint(scale[j] / d)), 0, 63) : 0;
      m[j] = dmin > 0 ? std::clamp(int(std::nearbyint(mn[j] / dmin)), 0, 63) : 0;
    }
    for (int j = 0; j < 4; ++j) {
      o.scales[j] = uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
      o.scales[j + 4] = uint8_t(m[j] | ((m[j + 4] >> 4) << 6));
      o.scales[j + 8] = uint8_t((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
    }
    uint8_t q[256];
    for (int j = 0; j < 8; ++j) {
      const float s = d * float(sc[j]), off = dmin * float(m[j]);
      for (int i = 0; i < 32; ++i)
        q[32 * j + i] = s > 0 ? uint8_t(std::clamp(int(std::nearbyint((x[32 * j + i] + off) / s)), 0, 15)) : 0;
    }
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) o.q[32 * c + l] = uint8_t(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
  }
}

// Q6_K: per 16 elements a signed scale mapping the largest magnitude to −32; the 16 scales are
// int8 multiples of the block's d.
void quantize_q6_k(const float* x, BlockQ6_K* out, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 256) {
    float scale[16], max_abs = 0;
    for (int k = 0; k < 16; ++k) {
      scale[k] = signed_absmax(x + 16 * k, 16) / -32.0f;
      max_abs = std::max(max_abs, std::fabs(scale[k]));
    }
    BlockQ6_K& o = out[b];
    o.d = f32_to_f16(max_abs / 127.0f);
    const float d = h2f(o.d);
    uint8_t u[256];
    for (int k = 0; k < 16; ++k) {
      const int sc = d > 0 ? std::clamp(int(std::nearbyint(scale[k] / d)), -128, 127) : 0;
      o.scales[k] = int8_t(sc);
      const float s = d * float(sc);
      for (int i = 0; i < 16; ++i)
        u[16 * k + i] = uint8_t(32 + (s != 0 ? std::clamp(int(std::nearbyint(x[16 * k + i] / s)), -32, 31) : 0));
    }
    for (int n = 0; n < 2; ++n)
      for (int l = 0; l < 32; ++l) {
        const uint8_t* e = u + 128 * n + l;
        o.ql[64 * n + l] = uint8_t((e[0] & 0xF) | ((e[64] & 0xF) << 4));
        o.ql[64 * n + l + 32] = uint8_t((e[32] & 0xF) | ((e[96] & 0xF) << 4));
        o.qh[32 * n + l] = uint8_t((e[0] >> 4) | ((e[32] >> 4) << 2) | ((e[64] >> 4) << 4) | ((e[96] >> 4) << 6));
      }
  }
}

// ---- Integer dot products. Every type is read as x = s·u + m per group with u unsigned; with
// activations a = d·q, a group's dot product is s·d·Σ(u·q) + m·d·Σq. The kernels produce Σ(u·q)
// per lane of 4 elements (what vpdpbusd / pmaddubsw+pmaddwd leave in each int32), so with the
// lane's d and d·Σq precomputed the whole row is acc += s·(Σuq·d) + m·(d·Σq) lane by lane.

#define Z_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))
#define Z_AVX2 __attribute__((target("avx2,f16c,fma")))

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

// A Q4_K block's 8 sub-block scales and 8 mins as 16 bytes, the 6-bit fields unpacked four at a
// time in 32-bit words (bytes 0-3 / 4-7 hold the low 6 bits of scales / mins 0-3 and the top 2
// bits of 4-7, bytes 8-11 the low nibbles of scales and mins 4-7).
inline __m128i q4k_scale_bytes(const BlockQ4_K& b) {
  uint32_t d, m, md;
  std::memcpy(&d, b.scales, 4);
  std::memcpy(&m, b.scales + 4, 4);
  std::memcpy(&md, b.scales + 8, 4);
  const uint32_t sc_lo = d & 0x3F3F3F3Fu, sc_hi = (md & 0x0F0F0F0Fu) | ((d >> 2) & 0x30303030u);
  const uint32_t mn_lo = m & 0x3F3F3F3Fu, mn_hi = ((md >> 4) & 0x0F0F0F0Fu) | ((m >> 2) & 0x30303030u);
  return _mm_setr_epi32(int(sc_lo), int(sc_hi), int(mn_lo), int(mn_hi));
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

// Types whose offset m is a fixed multiple of the scale (x = s·(u − k)): the index of k in
// QuantizedActivations::lane_off, else −1.
template <DType T>
constexpr int offset_index() {
  return T == DType::Q4_0 ? 0 : T == DType::Q6_K ? 1 : T == DType::Q8_0 ? 2 : -1;
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

// Q4_0/Q4_1 rows for one token, 4 blocks per step: each block's 16 bytes fill a 128-bit lane, so
// the nibbles unpack with one shift and two masks, against activations in the same order (q4).
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

// ---- Interleaved 8-row layouts. A group of 8 rows is stored as columns, each holding the 8 rows'
// bytes of one segment of elements: 4 blocks (128 elements) of Q4_0, one block of Q8_0 / Q4_1, one
// super-block (256) of Q4_K / Q6_K; same bytes in total as the plain rows.
constexpr size_t kX8Q4 = 8 * 4 * 18, kX8Q8 = 8 * 34, kX8Q41 = 8 * 40, kX8Q4K = 8 * 144, kX8Q6K = 8 * 210;  // bytes per column

DType plain_type(DType t) {
  switch (t) {
    case DType::Q4_0x8: return DType::Q4_0;
    case DType::Q8_0x8: return DType::Q8_0;
    case DType::Q4_1x8: return DType::Q4_1;
    case DType::Q4_Kx8: return DType::Q4_K;
    case DType::Q6_Kx8: return DType::Q6_K;
    default: return t;
  }
}
int64_t segment_elements(DType plain) {
  return plain == DType::Q4_0 ? 128 : plain == DType::Q4_1 ? 64 : plain == DType::Q8_0 ? 32 : 256;
}

// Rows longer than kChunkElements are cut into column chunks of that many elements, stored one
// after the other, each holding all the groups' columns in it: a thread's rows still stream
// contiguously, and the activations of one chunk (2 KB of int8) stay in L1 while they do. With
// whole rows in a group the activations of long rows fell out of L1 and the stream slowed
// (1 thread, from DRAM: Q4_K rows of 16384 21 GB/s whole, 32 GB/s chunked; 4096: 27-29 -> 31).
constexpr int64_t kChunkElements = 2048;

// Where the columns of an interleaved [rows, cols] matrix lie.
struct ColumnChunks {
  size_t col_bytes;   // one column of a group (8 rows)
  int64_t ncol;       // columns per row
  int64_t per_chunk;  // columns per full chunk
  int64_t groups;     // rows / 8
  int64_t count() const { return (ncol + per_chunk - 1) / per_chunk; }
  int64_t begin(int64_t k) const { return k * per_chunk; }
  int64_t end(int64_t k) const { return std::min(ncol, (k + 1) * per_chunk); }
  // Byte offset of group g's column c.
  size_t offset(int64_t g, int64_t c) const {
    const int64_t k = c / per_chunk;
    return size_t(k * per_chunk * groups + g * (end(k) - begin(k)) + c - k * per_chunk) * col_bytes;
  }
};
ColumnChunks column_chunks(DType plain, int64_t rows, int64_t cols) {
  const int64_t e = segment_elements(plain);
  return {row_bytes(plain, e) * 8, cols / e, kChunkElements / e, rows / 8};
}

// Q8_0x8 (272 bytes): the 8 f16 d, then bytes 0-15 of the 8 rows' quants, then bytes 16-31. The
// lane-per-block layout below ran Q8_0 ~50% faster from cache but streamed from DRAM 7-16%
// slower (decode), so Q8_0 keeps this one.
void q8x8_put(const uint8_t* blk, int r, uint8_t* col) {
  std::memcpy(col + 2 * r, blk, 2);
  for (int h = 0; h < 2; ++h) std::memcpy(col + 16 + 128 * h + 16 * r, blk + 2 + 16 * h, 16);
}
void q8x8_get(const uint8_t* col, int r, uint8_t* blk) {
  std::memcpy(blk, col + 2 * r, 2);
  for (int h = 0; h < 2; ++h) std::memcpy(blk + 2 + 16 * h, col + 16 + 128 * h + 16 * r, 16);
}

// Q4_1x8 (320 bytes, a column of 2 blocks): lane l = 2r + i of a vector is row r's block i.
// First the 16 lanes' f16 d, then their f16 m, then 4 vectors j of 64 bytes: lane l holds bytes
// 4j..4j+3 of its block's nibbles (as in the plain block, byte k: element k low, k + 16 high). A
// lane's multiply-adds then cover a whole block, so one conversion and one scaling serve 32 weights
// of a row (with a row's block across 4 lanes, as before, they served 8: one thread, 8 tokens,
// SmolLM2's rows in cache ~95 -> ~130 GMAC/s; one token unchanged). Q4_1 rows are often not a
// multiple of Q4_0x8's 128 (SmolLM2's 576), hence 2 blocks per column.
void q41x8_put(const uint8_t* seg, int r, uint8_t* col) {
  for (int i = 0; i < 2; ++i) {
    const uint8_t* blk = seg + 20 * i;
    const size_t l = size_t(2 * r + i);
    std::memcpy(col + 2 * l, blk, 2);
    std::memcpy(col + 32 + 2 * l, blk + 2, 2);
    for (size_t j = 0; j < 4; ++j) std::memcpy(col + 64 + 64 * j + 4 * l, blk + 4 + 4 * j, 4);
  }
}
void q41x8_get(const uint8_t* col, int r, uint8_t* seg) {
  for (int i = 0; i < 2; ++i) {
    uint8_t* blk = seg + 20 * i;
    const size_t l = size_t(2 * r + i);
    std::memcpy(blk, col + 2 * l, 2);
    std::memcpy(blk + 2, col + 32 + 2 * l, 2);
    for (size_t j = 0; j < 4; ++j) std::memcpy(blk + 4 + 4 * j, col + 64 + 64 * j + 4 * l, 4);
  }
}

// In the other layouts a vector holds rows 4h..4h+3 (h = r / 4) 16 bytes each, and lane i (bytes
// 4i..4i+3) of a row's 16 bytes belongs to block (or sub-block) 4p + i in pass p of the column. A
// chain of multiply-adds over one pass then needs one scale per lane: the row's scales of blocks
// 4p..4p+3, which is how the scale bytes are laid out. The activations come in the matching order
// (QuantizedActivations::k32, k16).
//   Q4_0x8 (576 bytes): per half h the f16 d of rows 4h..4h+3, blocks 0-3 (32 bytes); then per half
//   4 vectors L of 64 bytes: in row r's lane i, byte b, the low nibble is element 8L + b of block i
//   and the high one that + 4.
constexpr size_t kQ4Quants = 64;

// The 32 4-bit values u of one (sub-)block into its lane of 4 vectors 64 bytes apart (Q4_0x8 and
// Q4_Kx8): byte k of vector L holds u[8L + k] in its low nibble and u[8L + 4 + k] in its high one.
void put_nibble_lane(const uint8_t* u, uint8_t* lane) {
  for (size_t L = 0; L < 4; ++L)
    for (size_t k = 0; k < 4; ++k) lane[64 * L + k] = uint8_t(u[8 * L + k] | (u[8 * L + 4 + k] << 4));
}
void get_nibble_lane(const uint8_t* lane, uint8_t* u) {
  for (size_t L = 0; L < 4; ++L)
    for (size_t k = 0; k < 4; ++k) u[8 * L + k] = lane[64 * L + k] & 0xF, u[8 * L + 4 + k] = lane[64 * L + k] >> 4;
}

void q4x8_put(const uint8_t* seg, int r, uint8_t* col) {
  const size_t ri = size_t(r), h = ri / 4, row = ri % 4;
  for (size_t i = 0; i < 4; ++i) {
    const uint8_t* blk = seg + i * sizeof(BlockQ4_0);  // f16 d, then the nibbles
    std::memcpy(col + 32 * h + 8 * row + 2 * i, blk, 2);
    uint8_t u[32];
    for (int j = 0; j < 16; ++j) u[j] = blk[2 + j] & 0xF, u[j + 16] = blk[2 + j] >> 4;
    put_nibble_lane(u, col + kQ4Quants + 256 * h + 16 * row + 4 * i);
  }
}

void q4x8_get(const uint8_t* col, int r, uint8_t* seg) {
  const size_t ri = size_t(r), h = ri / 4, row = ri % 4;
  for (size_t i = 0; i < 4; ++i) {
    uint8_t* blk = seg + i * sizeof(BlockQ4_0);
    std::memcpy(blk, col + 32 * h + 8 * row + 2 * i, 2);
    uint8_t u[32];
    get_nibble_lane(col + kQ4Quants + 256 * h + 16 * row + 4 * i, u);
    for (int j = 0; j < 16; ++j) blk[2 + j] = uint8_t(u[j] | (u[j + 16] << 4));
  }
}

//   Q4_Kx8 (1152 bytes): d of the 8 rows, dmin, bytes 0-3, 4-7, 8-11 of their packed scales (32
//   each); then per pass p (0, 1) and half h, 4 vectors L of 64 bytes: in row r's lane i, byte b,
//   the low nibble is element 32(4p + i) + 8L + b and the high one that + 4.
//   Q6_Kx8 (1680 bytes): d of the 8 rows; the int8 scales, per pass p (0..3) and half h 16 bytes
//   (row, then sub-block 4p + i); then per pass and half three vectors A, B, H of 64 bytes: at row
//   r's lane i, byte b, the 4 elements 16(4p + i) + 4v + b (v = 0..3) have their low nibbles in
//   A (v 0, 2: low, high), B (v 1, 3) and their top 2 bits in H (bits 2v, 2v + 1).
constexpr size_t kQ4KQuants = 128, kQ6KScales = 16, kQ6KQuants = 144;

// A plain block's 256 unsigned quants, and back.
void q4k_values(const BlockQ4_K& b, uint8_t* u) {
  for (int j = 0; j < 8; ++j)
    for (int l = 0; l < 32; ++l) u[32 * j + l] = (b.q[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF;
}
void q4k_store(const uint8_t* u, BlockQ4_K& b) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) b.q[32 * c + l] = uint8_t(u[64 * c + l] | (u[64 * c + 32 + l] << 4));
}
void q6k_store(const uint8_t* u, BlockQ6_K& b) {
  for (int n = 0; n < 2; ++n)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* v = u + 128 * n + l;  // parts 0..3 at v[0], v[32], v[64], v[96]
      b.ql[64 * n + l] = uint8_t((v[0] & 0xF) | ((v[64] & 0xF) << 4));
      b.ql[64 * n + 32 + l] = uint8_t((v[32] & 0xF) | ((v[96] & 0xF) << 4));
      b.qh[32 * n + l] = uint8_t((v[0] >> 4) | ((v[32] >> 4) << 2) | ((v[64] >> 4) << 4) | ((v[96] >> 4) << 6));
    }
}

// Row r's block (blk, plain layout) into a K-quant column (put), or back out of it (get). The
// quants go through an array of 256 values in element order; q is the row's first byte in the
// column's vectors for pass p = 0, half h = r / 4.
void kx8_put(DType plain, const uint8_t* blk, int r, uint8_t* col) {
  const size_t ri = size_t(r), h = ri / 4;
  uint8_t u[256];
  if (plain == DType::Q4_K) {
    const auto& b = *reinterpret_cast<const BlockQ4_K*>(blk);
    std::memcpy(col + 2 * ri, &b.d, 2);
    std::memcpy(col + 16 + 2 * ri, &b.dmin, 2);
    for (size_t w = 0; w < 3; ++w) std::memcpy(col + 32 + 32 * w + 4 * ri, b.scales + 4 * w, 4);
    q4k_values(b, u);
    uint8_t* q = col + kQ4KQuants + 256 * h + 16 * (ri % 4);
    for (int j = 0; j < 8; ++j) put_nibble_lane(u + 32 * j, q + 512 * (j / 4) + 4 * (j % 4));  // sub-block j: pass j / 4, lane j % 4
    return;
  }
  const auto& b = *reinterpret_cast<const BlockQ6_K*>(blk);
  std::memcpy(col + 2 * ri, &b.d, 2);
  for (size_t k = 0; k < 16; ++k) col[kQ6KScales + 32 * (k / 4) + 16 * h + 4 * (ri % 4) + k % 4] = uint8_t(b.scales[k]);
  for (int e = 0; e < 256; ++e) u[e] = uint8_t(q6k_value(b, e));
  uint8_t* q = col + kQ6KQuants + 192 * h + 16 * (ri % 4);
  for (int p = 0; p < 4; ++p)
    for (int i = 0; i < 4; ++i)
      for (int k = 0; k < 4; ++k) {
        const uint8_t* v = u + 16 * (4 * p + i) + k;  // v[0], v[4], v[8], v[12]: values 0..3
        uint8_t* o = q + 384 * p + 4 * i + k;
        o[0] = uint8_t((v[0] & 0xF) | ((v[8] & 0xF) << 4));
        o[64] = uint8_t((v[4] & 0xF) | ((v[12] & 0xF) << 4));
        o[128] = uint8_t((v[0] >> 4) | ((v[4] >> 4) << 2) | ((v[8] >> 4) << 4) | ((v[12] >> 4) << 6));
      }
}

void kx8_get(DType plain, const uint8_t* col, int r, uint8_t* blk) {
  const size_t ri = size_t(r), h = ri / 4;
  uint8_t u[256];
  if (plain == DType::Q4_K) {
    auto& b = *reinterpret_cast<BlockQ4_K*>(blk);
    std::memcpy(&b.d, col + 2 * ri, 2);
    std::memcpy(&b.dmin, col + 16 + 2 * ri, 2);
    for (size_t w = 0; w < 3; ++w) std::memcpy(b.scales + 4 * w, col + 32 + 32 * w + 4 * ri, 4);
    const uint8_t* q = col + kQ4KQuants + 256 * h + 16 * (ri % 4);
    for (int j = 0; j < 8; ++j) get_nibble_lane(q + 512 * (j / 4) + 4 * (j % 4), u + 32 * j);
    return q4k_store(u, b);
  }
  auto& b = *reinterpret_cast<BlockQ6_K*>(blk);
  std::memcpy(&b.d, col + 2 * ri, 2);
  for (size_t k = 0; k < 16; ++k) b.scales[k] = int8_t(col[kQ6KScales + 32 * (k / 4) + 16 * h + 4 * (ri % 4) + k % 4]);
  const uint8_t* q = col + kQ6KQuants + 192 * h + 16 * (ri % 4);
  for (int p = 0; p < 4; ++p)
    for (int i = 0; i < 4; ++i)
      for (int k = 0; k < 4; ++k) {
        uint8_t* v = u + 16 * (4 * p + i) + k;
        const uint8_t* o = q + 384 * p + 4 * i + k;
        v[0] = uint8_t((o[0] & 0xF) | ((o[128] & 3) << 4));
        v[4] = uint8_t((o[64] & 0xF) | (((o[128] >> 2) & 3) << 4));
        v[8] = uint8_t((o[0] >> 4) | (((o[128] >> 4) & 3) << 4));
        v[12] = uint8_t((o[64] >> 4) | ((o[128] >> 6) << 4));
      }
  q6k_store(u, b);
}

// Row r's segment (plain layout) into its group's column, and back.
void x8_put(DType plain, const uint8_t* seg, int r, uint8_t* col) {
  if (plain == DType::Q4_K || plain == DType::Q6_K) return kx8_put(plain, seg, r, col);
  if (plain == DType::Q8_0) return q8x8_put(seg, r, col);
  if (plain == DType::Q4_1) return q41x8_put(seg, r, col);
  q4x8_put(seg, r, col);
}
void x8_get(DType plain, const uint8_t* col, int r, uint8_t* seg) {
  if (plain == DType::Q4_K || plain == DType::Q6_K) return kx8_get(plain, col, r, seg);
  if (plain == DType::Q8_0) return q8x8_get(col, r, seg);
  if (plain == DType::Q4_1) return q41x8_get(col, r, seg);
  q4x8_get(col, r, seg);
}

// Sums the 4 lanes of each 128-bit quarter: lane 4k ends up holding quarter k's total.
Z_VNNI inline __m512 quarter_sums(__m512 v) {
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));
  return _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));
}

// The group kernels below take NT tokens at once (NT = 1 for decode, 8 and 4 for prefill): the weights
// are loaded and unpacked once per block column for all of them, so prefill runs at the integer
// multiply-add rate instead of through a dequantized fp32/bf16 GEMM. Each takes the columns
// [c0, c1) of one group (g points at column c0) and writes y[t·ldy + r] for the group's 8 rows r,
// or adds to it (add: the columns of a later chunk).
// Decode leaves the streaming to the hardware prefetcher: with these kernels a software prefetch
// 1-8 KB ahead measured equal or slower on every type (7B decode, A/B runs alternated).

// A column's weight vectors, loaded for decode (NT = 1) in address order: an empty volatile asm
// keeps its place in program order, so the compiler can neither reorder the loads nor fold each
// into the two instructions that use it. Left to itself it scattered a column's loads (e.g. +0x40,
// +0x1c0, +0x140, +0x200, ...), and 7B Q4_0 decoded ~10% slower (1 thread, alternated: 6.7-6.9 vs
// 7.4-7.6 tok/s). Prompts (NT > 1) read the weights from L2 and ran ~3% faster (Q4_K_M) unpinned.
template <int NT>
Z_VNNI inline __m512i load_weights(const uint8_t* p) {
  __m512i v = _mm512_loadu_si512(p);
  if (NT == 1) __asm__ volatile("" : "+v"(v));
  return v;
}

Z_VNNI inline __m512i bcast8(const int8_t* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return _mm512_set1_epi64(v);
}
Z_VNNI inline __m512i bcast16(const int8_t* p) { return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// Prompts and batched decode (NT > 1) dwell on each column long enough that the hardware
// prefetcher, which stops at every 4 KB page, leaves the next page's first lines to a full DRAM
// round trip. Each column asks for the bytes 2 KB ahead (every byte once): one thread, NT = 8,
// weights from DRAM, SmolLM2's Q4_1 rows 88 -> 128 GMAC/s (in cache 143). Decode (NT = 1) reads
// fast enough for the hardware alone (see load_weights).
constexpr size_t kPrefetchAhead = 2048;
template <int NT>
Z_VNNI inline void prefetch_ahead(const uint8_t* g, size_t bytes) {
  if constexpr (NT > 1)
    for (size_t i = 0; i < bytes; i += 64) _mm_prefetch(reinterpret_cast<const char*>(g + kPrefetchAhead + i), _MM_HINT_T0);
}

// The 8 rows' sums (4 lanes per row, rows 0-3 in lo and 4-7 in hi) into y, or added to it.
Z_VNNI inline void store_rows(__m512 lo, __m512 hi, bool add, float* y) {
  alignas(64) float t0[16], t1[16];
  _mm512_store_ps(t0, quarter_sums(lo));
  _mm512_store_ps(t1, quarter_sums(hi));
  for (int r = 0; r < 4; ++r) {
    y[r] = add ? y[r] + t0[4 * r] : t0[4 * r];
    y[4 + r] = add ? y[4 + r] + t1[4 * r] : t1[4 * r];
  }
}

// The Q4_0, Q4_K and Q6_K kernels run per pass of a column: a vector of 4 rows × 16 bytes has
// lane i of each row on (sub-)block 4p + i, so the integer sums of a whole pass (8 vectors; 4 for
// Q6_K) chain in one register, whose lanes then take their block's scale times the activations' d
// in one multiply: per 64 weights one multiply-add and an eighth of a conversion and an FMA (a row
// at a time it was a conversion, a multiply and an FMA per 64). Both halves of the group (8 rows)
// are unpacked first, so each broadcast of the activations serves 8 rows.

// Bytes 0-15 (hr 0: rows 0-3) or 16-31 (rows 4-7) of v as 16 floats.
Z_VNNI inline __m512 widen_rows(__m256i v, int hr) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hr ? _mm256_extracti128_si256(v, 1) : _mm256_castsi256_si128(v)));
}

Z_VNNI inline __m512 row_lanes(__m256 v8, int hr) {  // [v[4hr] ×4, v[4hr + 1] ×4, ...]
  const __m512i idx = hr ? _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7)
                         : _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  return _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(v8));
}

// For both halves of the group (rows 0-3, 4-7): acc[h] += Σ over V vectors of u[h][v]·x[16v..]
// (lanes per block), scaled per lane by s[h]·d. Split: odd v in a second chain (hides the
// multiply-add latency), shifted right by Shift before the two are added (the 4-bit types' high
// nibbles stay in place as 16·u, which saves a shift per vector and is exact).
template <int V, bool Split, int Shift = 0>
Z_VNNI inline void pass_dot(const __m512i (*u)[V], const int8_t* x, __m512i init, const float* d, const __m512* s, __m512* acc) {
  __m512i c[2][2];
  for (int h = 0; h < 2; ++h) c[h][0] = init, c[h][1] = _mm512_setzero_si512();
  for (int v = 0; v < V; ++v) {
    const __m512i xv = bcast16(x + 16 * v);
    for (int h = 0; h < 2; ++h) c[h][Split ? v % 2 : 0] = _mm512_dpbusd_epi32(c[h][Split ? v % 2 : 0], u[h][v], xv);
  }
  const __m512 dx = _mm512_broadcast_f32x4(_mm_loadu_ps(d));
  for (int h = 0; h < 2; ++h) {
    const __m512i sum = Split ? _mm512_add_epi32(c[h][0], _mm512_srai_epi32(c[h][1], Shift)) : c[h][0];
    acc[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(s[h], dx), acc[h]);
  }
}

// Q8_0x8, per block column: vectors of 4 rows × 16 bytes (elements 0-15, then 16-31, as
// unsigned q + 128) against each token's low and high 16 activations broadcast to every row's lane;
// the integer sums start from −128·Σq so Σ(u − 128)·q comes out of the multiply-adds.
template <int NT>
Z_VNNI void group_q8x8(const uint8_t* g, const QuantizedActivations* a, int64_t c0, int64_t c1, bool add, float* y, int64_t ldy) {
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  const __m512i lo_idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m512i hi_idx = _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
  __m512 acc[NT][2];
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
  for (int64_t b = c0; b < c1; ++b, g += kX8Q8) {
    prefetch_ahead<NT>(g, kX8Q8);
    const __m256 sc8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
    __m512i u[2][2];  // [rows 0-3, 4-7][elements 0-15, 16-31]
    for (int k = 0; k < 4; ++k) u[k % 2][k / 2] = _mm512_xor_si512(load_weights<NT>(g + 16 + 64 * k), flip);
    for (int t = 0; t < NT; ++t) {
      const QuantizedActivations& x = a[t];
      const __m512 sc = _mm512_castps256_ps512(_mm256_mul_ps(sc8, _mm256_set1_ps(x.block_d[size_t(b)])));
      const __m512i xl = bcast16(x.q.data() + 32 * b), xh = bcast16(x.q.data() + 32 * b + 16);
      const __m512i init = _mm512_slli_epi32(  // −8·Σq → −128·Σq
          _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.q4_lane_off.data() + 4 * b))), 4);
      const __m512i d0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, u[0][0], xl), u[0][1], xh);
      const __m512i d1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, u[1][0], xl), u[1][1], xh);
      acc[t][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), _mm512_permutexvar_ps(lo_idx, sc), acc[t][0]);
      acc[t][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), _mm512_permutexvar_ps(hi_idx, sc), acc[t][1]);
    }
  }
  for (int t = 0; t < NT; ++t) store_rows(acc[t][0], acc[t][1], add, y + t * ldy);
}

// Q4_1x8, per column of 2 blocks: each lane (row, block) multiplies its 4 bytes' low nibbles with
// the token's 4 activations of the same elements of the same block, broadcast as a pair of blocks
// (QuantizedActivations::pairs), the high nibbles in a second chain (kept as 16·u, shifted back
// once); the lane's sum of the whole block then takes d·d_x and the offset m·(d_x·Σq) in two FMAs.
// Each row's two lanes are added at the end.
template <int NT>
Z_VNNI void group_q41x8(const uint8_t* g, const QuantizedActivations* a, int64_t c0, int64_t c1, bool add, float* y, int64_t ldy) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t c = c0; c < c1; ++c, g += kX8Q41) {
    prefetch_ahead<NT>(g, kX8Q41);
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g)));
    const __m512 m = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 32)));
    __m512i lo[4], hi[4];
    for (int j = 0; j < 4; ++j) {
      const __m512i v = load_weights<NT>(g + 64 + 64 * j);
      lo[j] = _mm512_and_si512(v, m4);
      hi[j] = _mm512_andnot_si512(m4, v);  // 16·u
    }
#pragma GCC unroll 8  // acc[] stays in registers only when every token's body is unrolled
    for (int t = 0; t < NT; ++t) {
      const int8_t* x = a[t].pairs.data() + 64 * c;  // step s: elements 4s..4s+3 of both blocks, 8 bytes
      __m512i sl = _mm512_setzero_si512(), sh = _mm512_setzero_si512();
      for (int j = 0; j < 4; ++j) {
        sl = _mm512_dpbusd_epi32(sl, lo[j], bcast8(x + 8 * j));
        sh = _mm512_dpbusd_epi32(sh, hi[j], bcast8(x + 32 + 8 * j));
      }
      const __m512i sum = _mm512_add_epi32(sl, _mm512_srai_epi32(sh, 4));
      const __m512 dx = _mm512_broadcast_f32x2(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a[t].block_d.data() + 2 * c))));
      const __m512 sx = _mm512_broadcast_f32x2(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a[t].block_s.data() + 2 * c))));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(d, dx), acc[t]);
      acc[t] = _mm512_fmadd_ps(m, sx, acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) {  // lanes 2r and 2r + 1 into row r
    const __m512 pairs = _mm512_add_ps(acc[t], _mm512_permute_ps(acc[t], 0xB1));
    alignas(64) float v[16];
    _mm512_store_ps(v, pairs);
    float* yt = y + t * ldy;
    for (int r = 0; r < 8; ++r) yt[r] = add ? yt[r] + v[2 * r] : v[2 * r];
  }
}

// Q4_0x8, per column of 4 blocks: the chains start from −8·Σq of each lane's block, so
// Σ(u − 8)·q comes out of the multiply-adds.
template <int NT>
Z_VNNI void group_q4x8(const uint8_t* g, const QuantizedActivations* a, int64_t c0, int64_t c1, bool add, float* y, int64_t ldy) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[NT][2];
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
  for (int64_t c = c0; c < c1; ++c, g += kX8Q4) {
    prefetch_ahead<NT>(g, kX8Q4);
    __m512 s[2];
    __m512i u[2][8];
    for (int hr = 0; hr < 2; ++hr) {
      s[hr] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 32 * hr)));
      for (int L = 0; L < 4; ++L) {
        const __m512i v = load_weights<NT>(g + kQ4Quants + 256 * hr + 64 * L);
        u[hr][2 * L] = _mm512_and_si512(v, m4);
        u[hr][2 * L + 1] = _mm512_andnot_si512(m4, v);  // 16·u
      }
    }
    for (int t = 0; t < NT; ++t) {
      const __m512i init = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a[t].off32.data() + 4 * c)));
      pass_dot<8, true, 4>(u, a[t].k32.data() + 128 * c, init, a[t].block_d.data() + 4 * c, s, acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) store_rows(acc[t][0], acc[t][1], add, y + t * ldy);
}

// Q4_Kx8. The packed 6-bit scales and mins of the 8 rows unpack with the word operations of
// q4k_scale_bytes, 8 rows per instruction; widened, each row's 128-bit lane holds its scales (or
// mins) of sub-blocks 0-3 or 4-7: the lane layout of the passes. The mins meet each token's
// sub-block sums d·Σq (k_sums) once per column.
template <int NT>
Z_VNNI void group_q4kx8(const uint8_t* g, const QuantizedActivations* a, int64_t c0, int64_t c1, bool add, float* y, int64_t ldy) {
  const __m256i k3f = _mm256_set1_epi8(0x3F), k0f = _mm256_set1_epi8(0x0F), k30 = _mm256_set1_epi8(0x30);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[NT][2];
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
  for (int64_t sb = c0; sb < c1; ++sb, g += kX8Q4K) {
    prefetch_ahead<NT>(g, kX8Q4K);
    const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
    const __m256 dm8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 16)));
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 32));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 64));
    const __m256i w2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 96));
    const __m256i sc_lo = _mm256_and_si256(w0, k3f);
    const __m256i sc_hi = _mm256_or_si256(_mm256_and_si256(w2, k0f), _mm256_and_si256(_mm256_srli_epi32(w0, 2), k30));
    const __m256i mn_lo = _mm256_and_si256(w1, k3f);
    const __m256i mn_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(w2, 4), k0f), _mm256_and_si256(_mm256_srli_epi32(w1, 2), k30));
    __m512 s[2][2];  // [pass][half]
    for (int hr = 0; hr < 2; ++hr) {
      const __m512 d = row_lanes(d8, hr), dm = row_lanes(dm8, hr);
      s[0][hr] = _mm512_mul_ps(widen_rows(sc_lo, hr), d);
      s[1][hr] = _mm512_mul_ps(widen_rows(sc_hi, hr), d);
      const __m512 m_lo = _mm512_mul_ps(widen_rows(mn_lo, hr), dm), m_hi = _mm512_mul_ps(widen_rows(mn_hi, hr), dm);
      for (int t = 0; t < NT; ++t) {
        const float* ks = a[t].k_sums.data() + 16 * sb + 8;  // d·Σq of sub-blocks 0-7
        acc[t][hr] = _mm512_fnmadd_ps(m_lo, _mm512_broadcast_f32x4(_mm_loadu_ps(ks)), acc[t][hr]);
        acc[t][hr] = _mm512_fnmadd_ps(m_hi, _mm512_broadcast_f32x4(_mm_loadu_ps(ks + 4)), acc[t][hr]);
      }
    }
    for (int p = 0; p < 2; ++p) {
      __m512i u[2][8];
      for (int hr = 0; hr < 2; ++hr)
        for (int L = 0; L < 4; ++L) {
          const __m512i v = load_weights<NT>(g + kQ4KQuants + 256 * (2 * p + hr) + 64 * L);
          u[hr][2 * L] = _mm512_and_si512(v, m4);
          u[hr][2 * L + 1] = _mm512_andnot_si512(m4, v);  // 16·u
        }
      for (int t = 0; t < NT; ++t)
        pass_dot<8, true, 4>(u, a[t].k32.data() + 256 * sb + 128 * p, _mm512_setzero_si512(), a[t].block_d.data() + 8 * sb + 4 * p,
                             s[p], acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) store_rows(acc[t][0], acc[t][1], add, y + t * ldy);
}

// Q6_Kx8: x = d·sc·(u − 32); the chains start from −32·Σq of each lane's sub-block (off16).
template <int NT>
Z_VNNI void group_q6kx8(const uint8_t* g, const QuantizedActivations* a, int64_t c0, int64_t c1, bool add, float* y, int64_t ldy) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  constexpr int kOr = 0xF8;  // ternary logic a | (b & c)
  __m512 acc[NT][2];
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
  for (int64_t sb = c0; sb < c1; ++sb, g += kX8Q6K) {
    prefetch_ahead<NT>(g, kX8Q6K);
    const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
    const __m512 d[2] = {row_lanes(d8, 0), row_lanes(d8, 1)};
    for (int p = 0; p < 4; ++p) {
      __m512 s[2];
      __m512i u[2][4];
      for (int hr = 0; hr < 2; ++hr) {
        const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(g + kQ6KScales + 32 * p + 16 * hr));
        s[hr] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)), d[hr]);
        const uint8_t* q = g + kQ6KQuants + 192 * (2 * p + hr);
        const __m512i A = load_weights<NT>(q), B = load_weights<NT>(q + 64), H = load_weights<NT>(q + 128);
        u[hr][0] = _mm512_ternarylogic_epi32(_mm512_and_si512(A, m4), _mm512_slli_epi16(H, 4), m30, kOr);
        u[hr][1] = _mm512_ternarylogic_epi32(_mm512_and_si512(B, m4), _mm512_slli_epi16(H, 2), m30, kOr);
        u[hr][2] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(A, 4), m4), H, m30, kOr);
        u[hr][3] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(B, 4), m4), _mm512_srli_epi16(H, 2), m30, kOr);
      }
      for (int t = 0; t < NT; ++t) {
        const size_t k = size_t(16 * sb + 4 * p);  // the pass's first sub-block of 16
        const __m512i init = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a[t].off16.data() + k)));
        pass_dot<4, NT == 1>(u, a[t].k16.data() + 16 * k, init, a[t].d16.data() + k, s, acc[t]);
      }
    }
  }
  for (int t = 0; t < NT; ++t) store_rows(acc[t][0], acc[t][1], add, y + t * ldy);
}

// Columns [c0, c1) of one group (g: its column c0) for NT tokens.
template <int NT>
void group_tokens(DType t, const uint8_t* g, const QuantizedActivations* a, int64_t c0, int64_t c1, bool add, float* y, int64_t ldy) {
  if (t == DType::Q4_0x8) group_q4x8<NT>(g, a, c0, c1, add, y, ldy);
  else if (t == DType::Q4_Kx8) group_q4kx8<NT>(g, a, c0, c1, add, y, ldy);
  else if (t == DType::Q6_Kx8) group_q6kx8<NT>(g, a, c0, c1, add, y, ldy);
  else if (t == DType::Q4_1x8) group_q41x8<NT>(g, a, c0, c1, add, y, ldy);
  else group_q8x8<NT>(g, a, c0, c1, add, y, ldy);
}

// Rows [r0, r1) (whole groups) of an interleaved [rows, n] matrix against ntok tokens, column
// chunk by column chunk (the first one stores y, the others add to it): within a chunk the rows
// in blocks of ~256 KB that stay in L2 while the tokens pass them 8 at a time (8 tokens'
// accumulators, 16 registers, leave room for the unpacked weights; 8 beat 4 by ~20% for Q8_0,
// ~4% for Q4_K).
void gemm_interleaved(DType t, const uint8_t* w, int64_t rows, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1,
                      float* y, int64_t ldy) {
  const ColumnChunks ch = column_chunks(plain_type(t), rows, x[0].n);
  for (int64_t k = 0; k < ch.count(); ++k) {
    const int64_t c0 = ch.begin(k), c1 = ch.end(k);
    const uint8_t* base = w + ch.offset(0, c0);
    const size_t group = size_t(c1 - c0) * ch.col_bytes;  // one group's bytes in this chunk
    const int64_t block = 8 * std::max<int64_t>(1, int64_t((size_t(1) << 18) / group));
    for (int64_t b0 = r0; b0 < r1; b0 += block) {
      const int64_t b1 = std::min(r1, b0 + block);
      auto pass = [&]<int NT>(int64_t i) {  // tokens [i, i + NT) over the block's groups
        for (int64_t r = b0; r < b1; r += 8) group_tokens<NT>(t, base + size_t(r / 8) * group, x + i, c0, c1, k > 0, y + i * ldy + r, ldy);
      };
      int64_t i = 0;
      for (; i + 8 <= ntok; i += 8) pass.template operator()<8>(i);
      for (; i + 4 <= ntok; i += 4) pass.template operator()<4>(i);
      for (; i < ntok; ++i) pass.template operator()<1>(i);
    }
  }
}

// ---- Dequantization of whole rows for the prefill GEMM (16 values per vector).
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

// AVX2: 32 elements (8 lanes) per step; pmaddubsw + pmaddwd produce the same lane sums.
struct Step256 {
  __m256i u;
  __m256 s, m;      // m: Q4_1's offsets; Q4_K's 8 offsets at the block's first step (Q4_0, Q6_K: lane_off)
  bool is_signed;  // Q8_0: u holds signed weights (u·q could overflow pmaddubsw as unsigned)
};

template <DType T>
Z_AVX2 inline Step256 unpack256(const uint8_t* row, int64_t e, float* cache) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  Step256 r{};
  if constexpr (T == DType::Q4_0 || T == DType::Q4_1) {
    using B = std::conditional_t<T == DType::Q4_0, BlockQ4_0, BlockQ4_1>;
    const B& b = reinterpret_cast<const B*>(row)[e / 32];
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q));
    r.u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
    r.s = _mm256_set1_ps(_cvtsh_ss(b.d));
    if constexpr (T == DType::Q4_1) r.m = _mm256_set1_ps(_cvtsh_ss(b.m));
  } else if constexpr (T == DType::Q8_0) {
    const BlockQ8_0& b = reinterpret_cast<const BlockQ8_0*>(row)[e / 32];
    r.u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q));
    r.s = _mm256_set1_ps(_cvtsh_ss(b.d));
    r.m = _mm256_setzero_ps();
    r.is_signed = true;
  } else if constexpr (T == DType::Q4_K) {
    const BlockQ4_K& b = reinterpret_cast<const BlockQ4_K*>(row)[e / 256];
    const int j = int(e % 256) / 32;
    if (j == 0) {  // the 8 scales into the cache; the 8 offsets go to the step at once (see step256)
      const __m128i bytes = q4k_scale_bytes(b);
      _mm256_storeu_ps(cache, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)), _mm256_set1_ps(_cvtsh_ss(b.d))));
      r.m = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8))), _mm256_set1_ps(-_cvtsh_ss(b.dmin)));
    }
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q + 32 * (j / 2)));
    r.u = _mm256_and_si256(j % 2 ? _mm256_srli_epi16(v, 4) : v, m4);
    r.s = _mm256_set1_ps(cache[j]);
  } else {
    const BlockQ6_K& b = reinterpret_cast<const BlockQ6_K*>(row)[e / 256];
    const int j = int(e % 256) / 32, n = j / 4, part = j % 4;
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * n + (part & 1) * 32));
    const __m256i low = _mm256_and_si256(part < 2 ? lo : _mm256_srli_epi16(lo, 4), m4);
    const __m256i hq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * n));
    const __m256i high = _mm256_and_si256(_mm256_srl_epi16(hq, _mm_cvtsi32_si128(2 * part)), _mm256_set1_epi8(3));
    r.u = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
    const float d = _cvtsh_ss(b.d);
    r.s = _mm256_setr_m128(_mm_set1_ps(d * float(b.scales[2 * j])), _mm_set1_ps(d * float(b.scales[2 * j + 1])));
  }
  return r;
}

template <DType T>
Z_AVX2 inline void step256(const Step256& st, const QuantizedActivations& a, int64_t e, __m256& acc_s, __m256& acc_m) {
  __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q.data() + e)), u = st.u;
  if (st.is_signed) {  // Σ w·q = Σ |w|·(q·sign(w))
    x = _mm256_sign_epi8(x, u);
    u = _mm256_sign_epi8(u, u);
  }
  __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
  if constexpr (T == DType::Q4_0 || T == DType::Q6_K)  // Σ(u − k)·q: the offset joins the integer sums
    dot = _mm256_add_epi32(dot, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.lane_off[offset_index<T>()].data() + e / 4)));
  const __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_loadu_ps(a.lane_d.data() + e / 4));
  acc_s = _mm256_fmadd_ps(st.s, p, acc_s);
  if constexpr (T == DType::Q4_K) {  // the offsets once per block: its 8 (−dmin·m) times the sub-blocks' d·Σq
    if (e % 256 == 0) acc_m = _mm256_fmadd_ps(st.m, _mm256_loadu_ps(a.k_sums.data() + e / 16 + 8), acc_m);
  } else if constexpr (T == DType::Q4_1) {
    acc_m = _mm256_fmadd_ps(st.m, _mm256_loadu_ps(a.lane_s.data() + e / 4), acc_m);
  }
}

Z_AVX2 inline float hsum256(__m256 t) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
  const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
}

// NT tokens against one row (NT = 1 is the GEMV): each step's weights are unpacked once for all.
template <DType T, int NT>
Z_AVX2 void row_dot_avx2_tokens(const uint8_t* row, const QuantizedActivations* a, float* out, int64_t out_stride) {
  __m256 acc_s[NT], acc_m[NT];
  for (int t = 0; t < NT; ++t) acc_s[t] = acc_m[t] = _mm256_setzero_ps();
  float cache[16];
  for (int64_t e = 0; e < a[0].n; e += 32) {
    const Step256 st = unpack256<T>(row, e, cache);
    for (int t = 0; t < NT; ++t) step256<T>(st, a[t], e, acc_s[t], acc_m[t]);
  }
  for (int t = 0; t < NT; ++t) out[t * out_stride] = hsum256(_mm256_add_ps(acc_s[t], acc_m[t]));
}

// R rows against one token (the GEMV): the rows' independent accumulators overlap the FMA
// latencies, and the activation loads are shared.
template <DType T, int R>
Z_AVX2 void rows_dot_avx2(const uint8_t* row0, size_t stride, const QuantizedActivations& a, float* y) {
  __m256 acc_s[R], acc_m[R];
  for (int i = 0; i < R; ++i) acc_s[i] = acc_m[i] = _mm256_setzero_ps();
  float cache[R][16];
  for (int64_t e = 0; e < a.n; e += 32)
    for (int i = 0; i < R; ++i) step256<T>(unpack256<T>(row0 + size_t(i) * stride, e, cache[i]), a, e, acc_s[i], acc_m[i]);
  for (int i = 0; i < R; ++i) y[i] = hsum256(_mm256_add_ps(acc_s[i], acc_m[i]));
}

// Dequantization for the prefill panels on AVX2: 8 elements per store. Each value is fma(u, s, m)
// with the s and m dequantize_row uses (its Q4_0/Q4_1/Q8_0 products d·u are exact, so its
// separate multiply and add round the same), so the two agree bit for bit.
Z_AVX2 inline void store_affine8(float* out, __m128i bytes8, bool is_signed, __m256 s, __m256 m) {
  const __m256i v = is_signed ? _mm256_cvtepi8_epi32(bytes8) : _mm256_cvtepu8_epi32(bytes8);
  _mm256_storeu_ps(out, _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), s, m));
}

template <DType T>
Z_AVX2 void dequantize_row_avx2(const uint8_t* row, int64_t cols, float* out) {
  float cache[16];
  alignas(32) float offsets[8] = {}, scales[8];
  alignas(32) uint8_t bytes[32];
  for (int64_t e = 0; e < cols; e += 32) {
    const Step256 st = unpack256<T>(row, e, cache);
    if constexpr (T == DType::Q4_K)
      if (e % 256 == 0) _mm256_store_ps(offsets, st.m);
    _mm256_store_si256(reinterpret_cast<__m256i*>(bytes), st.u);
    _mm256_store_ps(scales, st.s);
    for (int g = 0; g < 4; ++g) {
      const __m128i b8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes + 8 * g));
      const __m256 sc = _mm256_set1_ps(scales[g / 2 * 4]);  // Q6_K: lanes 0 and 4 start the 16-groups
      __m256 off = _mm256_setzero_ps();
      if constexpr (T == DType::Q4_0) off = _mm256_mul_ps(sc, _mm256_set1_ps(-8.0f));
      else if constexpr (T == DType::Q6_K) off = _mm256_mul_ps(sc, _mm256_set1_ps(-32.0f));
      else if constexpr (T == DType::Q4_1) off = st.m;
      else if constexpr (T == DType::Q4_K) off = _mm256_set1_ps(offsets[int(e % 256) / 32]);
      store_affine8(out + e + 8 * g, b8, st.is_signed, sc, off);
    }
  }
}

enum class Isa { Scalar, Avx2, Vnni };

// Activations to int8 per block of 32: d = max|x| / 127, q = round-half-even(x / d). The vector
// version gives the same bits (same product, same rounding); the scalar loop's rounding is a libm
// call (quantize_activations of 4096 values: 14 us with it, 3 us with the vector version).
void quantize_blocks_scalar(const float* x, int64_t n, int8_t* q, float* d) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* v = x + 32 * b;
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[i]));
    d[b] = amax / 127.0f;
    const float id = d[b] != 0 ? 1.0f / d[b] : 0.0f;
    for (int i = 0; i < 32; ++i) q[32 * b + i] = int8_t(std::nearbyint(v[i] * id));
  }
}

Z_AVX2 void quantize_blocks_avx2(const float* x, int64_t n, int8_t* q, float* d) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* v = x + 32 * b;
    __m256 r[4], m = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) r[k] = _mm256_loadu_ps(v + 8 * k), m = _mm256_max_ps(m, _mm256_and_ps(r[k], abs_mask));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    d[b] = _mm_cvtss_f32(h) / 127.0f;
    const __m256 id = _mm256_set1_ps(d[b] != 0 ? 1.0f / d[b] : 0.0f);
    __m256i i[4];
    for (int k = 0; k < 4; ++k) i[k] = _mm256_cvtps_epi32(_mm256_mul_ps(r[k], id));  // current rounding mode: half-even
    // int32 → int16 → int8 with saturation (values are within ±127); packs interleave the
    // 128-bit halves, the permute puts them back in order.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32 * b), _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  }
}

Isa detect_isa() {
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni"))
    return Isa::Vnni;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;  // every AVX2 CPU has F16C
  return Isa::Scalar;
}
const Isa kBestIsa = detect_isa();
Isa g_isa = kBestIsa;

template <DType T>
void gemv_typed(const uint8_t* w, size_t stride, const QuantizedActivations& x, int64_t r0, int64_t r1, float* y) {
  // The 512-bit kernel takes 64 elements per step: rows of an odd number of 32-blocks use AVX2.
  const Isa isa = g_isa == Isa::Vnni && x.n % 64 != 0 ? Isa::Avx2 : g_isa;
  int64_t r = r0;
  // Long rows: the activations no longer fit in L1, so 4 rows share their loads. Short rows
  // stream best one at a time (one sequential stream for the prefetcher).
  if constexpr (T == DType::Q4_K || T == DType::Q6_K || T == DType::Q8_0)
    if (isa == Isa::Vnni && x.n > 4096)
      for (; r + 4 <= r1; r += 4) rows_dot_vnni<T, 4>(w + size_t(r) * stride, stride, x, y + r);
  if (isa == Isa::Avx2)
    for (; r + 4 <= r1; r += 4) rows_dot_avx2<T, 4>(w + size_t(r) * stride, stride, x, y + r);
  for (; r < r1; ++r) {
    const uint8_t* row = w + size_t(r) * stride;
    if constexpr (T == DType::Q4_0 || T == DType::Q4_1)
      if (isa == Isa::Vnni && !x.q4.empty()) {
        y[r] = row_dot_q4x4<T>(row, x);
        continue;
      }
    if (isa == Isa::Vnni) y[r] = row_dot_vnni<T>(row, x);
    else if (isa == Isa::Avx2) rows_dot_avx2<T, 1>(row, stride, x, y + r);
    else y[r] = float(quant_dot_reference(T, row, x));
  }
}

// Every token's rows exactly as gemv_typed computes them for that token alone; where gemv_typed
// takes the 512-bit one-row kernels, 4 tokens share each row's unpacking.
template <DType T>
void gemv_tokens_typed(const uint8_t* w, size_t stride, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1,
                       float* y, int64_t ldy) {
  const bool one_row_kernels = g_isa == Isa::Vnni && x[0].n % 64 == 0 &&
                               !((T == DType::Q4_K || T == DType::Q6_K || T == DType::Q8_0) && x[0].n > 4096);
  if (!one_row_kernels) {
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

template <DType T>
void gemm_typed(const uint8_t* w, size_t stride, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1,
                float* y, int64_t ldy) {
  if (g_isa == Isa::Avx2 || (g_isa == Isa::Vnni && x[0].n % 64 != 0)) {
    int64_t t = 0;
    for (; t + 4 <= ntok; t += 4)
      for (int64_t r = r0; r < r1; ++r) row_dot_avx2_tokens<T, 4>(w + size_t(r) * stride, x + t, y + t * ldy + r, ldy);
    for (; t < ntok; ++t)
      for (int64_t r = r0; r < r1; ++r) row_dot_avx2_tokens<T, 1>(w + size_t(r) * stride, x + t, y + t * ldy + r, ldy);
    return;
  }
  if (g_isa == Isa::Scalar) {
    for (int64_t t = 0; t < ntok; ++t)
      for (int64_t r = r0; r < r1; ++r) y[t * ldy + r] = float(quant_dot_reference(T, w + size_t(r) * stride, x[t]));
    return;
  }
  // Tokens in groups of 4 for every row of the range: the rows stay in cache while the
  // activations stream past them.
  int64_t t = 0;
  for (; t + 4 <= ntok; t += 4)
    for (int64_t r = r0; r < r1; ++r) row_dot_vnni_tokens<T, 4>(w + size_t(r) * stride, x + t, y + t * ldy + r, ldy);
  for (; t < ntok; ++t)
    for (int64_t r = r0; r < r1; ++r) row_dot_vnni_tokens<T, 1>(w + size_t(r) * stride, x + t, y + t * ldy + r, ldy);
}

}  // namespace

void dequantize_row(DType t, const void* src, float* y, int64_t n) {
  const int64_t nb = n / block_elements(t);
  switch (t) {
    case DType::Q8_0:
      for (int64_t b = 0; b < nb; ++b) {
        const auto& k = static_cast<const BlockQ8_0*>(src)[b];
        const float d = h2f(k.d);
        for (int i = 0; i < 32; ++i) y[32 * b + i] = d * float(k.q[i]);
      }
      return;
    case DType::Q4_0:
    case DType::Q4_1:
      for (int64_t b = 0; b < nb; ++b) {
        float d, m;
        const uint8_t* q;
        if (t == DType::Q4_0) {
          const auto& k = static_cast<const BlockQ4_0*>(src)[b];
          d = h2f(k.d), m = -8.0f * d, q = k.q;
        } else {
          const auto& k = static_cast<const BlockQ4_1*>(src)[b];
          d = h2f(k.d), m = h2f(k.m), q = k.q;
        }
        for (int j = 0; j < 16; ++j) {
          y[32 * b + j] = d * float(q[j] & 0xF) + m;
          y[32 * b + j + 16] = d * float(q[j] >> 4) + m;
        }
      }
      return;
    case DType::Q4_K:
      for (int64_t b = 0; b < nb; ++b) {
        const auto& k = static_cast<const BlockQ4_K*>(src)[b];
        const float d = h2f(k.d), dmin = h2f(k.dmin);
        for (int j = 0; j < 8; ++j) {
          int sc, m;
          q4k_scale_min(k.scales, j, sc, m);
          const float s = d * float(sc), off = dmin * float(m);
          const uint8_t* q = k.q + 32 * (j / 2);
          // fma: one rounding, as the vectorised dequantization does
          for (int l = 0; l < 32; ++l) y[256 * b + 32 * j + l] = std::fma(s, float(j % 2 ? q[l] >> 4 : q[l] & 0xF), -off);
        }
      }
      return;
    case DType::Q6_K:
      for (int64_t b = 0; b < nb; ++b) {
        const auto& k = static_cast<const BlockQ6_K*>(src)[b];
        const float d = h2f(k.d);
        for (int i = 0; i < 256; ++i) {
          const float sc = d * float(k.scales[i / 16]);
          y[256 * b + i] = std::fma(float(q6k_value(k, i)), sc, -32.0f * sc);
        }
      }
      return;
    default: to_f32(t, src, y, size_t(n));
  }
}

bool can_quantize(DType t) { return is_quantized(t); }

void quantize_row(DType t, const float* x, void* dst, int64_t n) {
  const int64_t nb = n / block_elements(t);
  switch (t) {
    case DType::Q8_0: return quantize_q8_0(x, static_cast<BlockQ8_0*>(dst), nb);
    case DType::Q4_0: return quantize_q4_0(x, static_cast<BlockQ4_0*>(dst), nb);
    case DType::Q4_1: return quantize_q4_1(x, static_cast<BlockQ4_1*>(dst), nb);
    case DType::Q4_K: return quantize_q4_k(x, static_cast<BlockQ4_K*>(dst), nb);
    case DType::Q6_K: return quantize_q6_k(x, static_cast<BlockQ6_K*>(dst), nb);
    case DType::Q4_0x8: case DType::Q8_0x8: case DType::Q4_1x8: case DType::Q4_Kx8: case DType::Q6_Kx8: throw Error("quantize_row: interleaved layouts are made by interleave_rows");
    case DType::F32: std::memcpy(dst, x, size_t(n) * 4); return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(x[i]);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(x[i]);
      return;
  }
}

void quantize_activations(const float* x, int64_t n, QuantizedActivations& a, DType weights) {
  a.n = n;
  a.q.resize(size_t(n));
  a.block_d.resize(size_t(n / 32));
  const std::vector<float>& d = a.block_d;
  if (g_isa != Isa::Scalar) quantize_blocks_avx2(x, n, a.q.data(), a.block_d.data());
  else quantize_blocks_scalar(x, n, a.q.data(), a.block_d.data());
  // Per lane of 4 elements the integer sum of q; everything below is built from these.
  static thread_local std::vector<int32_t> sums;  // kept: decode quantizes ~150 times a token
  sums.resize(size_t(n / 4));
  for (size_t l = 0; l < sums.size(); ++l) {
    const int8_t* q = a.q.data() + 4 * l;
    sums[l] = q[0] + q[1] + q[2] + q[3];
  }
  // An interleaved type's kernel reads only its own order (decode quantizes ~150 times a token:
  // building every order cost ~2% of 7B decode); any other type gets all of them.
  const bool all = !is_interleaved(weights);
  const auto wants = [&](DType t) { return all || weights == t; };
  const bool groups_of_128 = n % 128 == 0;  // the interleaved and nibble orders need whole groups
  [](auto&... v) { (v.clear(), ...); }(a.lane_d, a.lane_s, a.lane_off[0], a.lane_off[1], a.lane_off[2], a.k_sums, a.q4_lane_off,
                                        a.q4, a.q4_lane_d, a.q4_lane_s, a.k32, a.k16, a.off32, a.d16, a.off16,
                                        a.block_s, a.pairs);
  if (wants(DType::Q4_Kx8)) {
    a.k_sums.assign(n % 256 == 0 ? size_t(n / 16) : 0, 0.0f);
    for (size_t j = 0; j < a.k_sums.size() / 16 * 8; ++j) {  // sub-block j: lanes 8j..8j+7
      int32_t s = 0;
      for (size_t l = 8 * j; l < 8 * j + 8; ++l) s += sums[l];
      a.k_sums[j / 8 * 16 + 8 + j % 8] = d[j] * float(s);
    }
  }
  if (all) {
    a.lane_d.resize(size_t(n / 4));
    a.lane_s.resize(size_t(n / 4));
    for (auto& v : a.lane_off) v.resize(size_t(n / 4));
    for (size_t l = 0; l < sums.size(); ++l) {
      const float dl = d[l / 8];
      a.lane_d[l] = dl;
      a.lane_s[l] = dl * float(sums[l]);
      a.lane_off[0][l] = -8 * sums[l];
      a.lane_off[1][l] = -32 * sums[l];
      a.lane_off[2][l] = -128 * sums[l];
    }
  }
  // Per 4 blocks of S elements, group v takes 4 bytes at S·i + 4v from each block i (int32 lanes).
  const auto lane_order = [&](size_t S, std::vector<int8_t>& out) {
    out.resize(size_t(n));
    for (size_t g = 0; g < size_t(n) / (4 * S); ++g)
      for (size_t v = 0; v < S / 4; ++v)
        for (size_t i = 0; i < 4; ++i) std::memcpy(&out[4 * S * g + 16 * v + 4 * i], &a.q[4 * S * g + S * i + 4 * v], 4);
  };
  if (groups_of_128 && (wants(DType::Q4_0x8) || wants(DType::Q4_Kx8))) lane_order(32, a.k32);
  if (groups_of_128 && wants(DType::Q6_Kx8)) {
    lane_order(16, a.k16);
    a.d16.resize(size_t(n / 16));
    a.off16.resize(size_t(n / 16));
    for (size_t k = 0; k < a.d16.size(); ++k) {
      a.d16[k] = d[k / 2];
      a.off16[k] = -32 * (sums[4 * k] + sums[4 * k + 1] + sums[4 * k + 2] + sums[4 * k + 3]);
    }
  }
  if (groups_of_128 && wants(DType::Q4_0x8)) {
    a.off32.resize(size_t(n / 32));
    for (size_t b = 0; b < a.off32.size(); ++b) a.off32[b] = -8 * std::accumulate(&sums[8 * b], &sums[8 * b + 8], 0);
  }
  // Lane j of a 4-bit block pairs elements 4j..4j+3 with 16+4j..16+4j+3 (lanes j and j + 4).
  if (wants(DType::Q4_1x8)) {
    if (n % 64 == 0) {  // per 2 blocks, step s: bytes 4s..4s+3 of the first block, then of the second
      a.pairs.resize(size_t(n));
      for (size_t c = 0; c < size_t(n / 64); ++c)
        for (size_t st = 0; st < 8; ++st)
          for (size_t i = 0; i < 2; ++i) std::memcpy(&a.pairs[64 * c + 8 * st + 4 * i], &a.q[64 * c + 32 * i + 4 * st], 4);
    }
    a.block_s.resize(size_t(n / 32));
    for (size_t b = 0; b < a.block_s.size(); ++b) a.block_s[b] = d[b] * float(std::accumulate(&sums[8 * b], &sums[8 * b + 8], 0));
  }
  if (wants(DType::Q8_0x8)) {
    a.q4_lane_off.resize(size_t(n / 8));
    for (size_t b = 0; b < size_t(n / 32); ++b)
      for (size_t j = 0; j < 4; ++j) a.q4_lane_off[4 * b + j] = -8 * (sums[8 * b + j] + sums[8 * b + 4 + j]);
  }
  if (!all || !groups_of_128) return;
  a.q4.resize(size_t(n));
  a.q4_lane_d.resize(size_t(n / 8));
  a.q4_lane_s.resize(size_t(n / 8));
  for (int64_t g = 0; g < n / 128; ++g) {
    const int8_t* q = a.q.data() + 128 * g;
    int8_t* o = a.q4.data() + 128 * g;
    for (size_t k = 0; k < 4; ++k) {
      std::memcpy(o + 16 * k, q + 32 * k, 16);
      std::memcpy(o + 64 + 16 * k, q + 32 * k + 16, 16);
      const size_t b = size_t(4 * g) + k;
      for (size_t j = 0; j < 4; ++j) {
        a.q4_lane_d[4 * b + j] = d[b];
        a.q4_lane_s[4 * b + j] = d[b] * float(sums[8 * b + j] + sums[8 * b + 4 + j]);
      }
    }
  }
}

double quant_dot_reference(DType t, const void* row, const QuantizedActivations& x) {
  std::vector<float> w(size_t(x.n));
  dequantize_row(t, row, w.data(), x.n);
  double s = 0;
  for (int64_t i = 0; i < x.n; ++i) s += double(w[size_t(i)]) * double(x.lane_d[size_t(i / 4)]) * double(x.q[size_t(i)]);
  return s;
}

void quant_gemv_rows(DType t, const void* w, int64_t rows, int64_t n, const QuantizedActivations& x, int64_t r0, int64_t r1,
                     float* y) {
  const auto* base = static_cast<const uint8_t*>(w);
  const size_t stride = row_bytes(t, n);
  switch (t) {
    case DType::Q8_0: return gemv_typed<DType::Q8_0>(base, stride, x, r0, r1, y);
    case DType::Q4_0: return gemv_typed<DType::Q4_0>(base, stride, x, r0, r1, y);
    case DType::Q4_1: return gemv_typed<DType::Q4_1>(base, stride, x, r0, r1, y);
    case DType::Q4_K: return gemv_typed<DType::Q4_K>(base, stride, x, r0, r1, y);
    case DType::Q6_K: return gemv_typed<DType::Q6_K>(base, stride, x, r0, r1, y);
    case DType::Q4_0x8: case DType::Q8_0x8: case DType::Q4_1x8: case DType::Q4_Kx8: case DType::Q6_Kx8:
      return gemm_interleaved(t, base, rows, &x, 1, r0, r1, y, 0);
    default: throw Error(std::string("quant_gemv_rows: ") + dtype_name(t) + " is not a block type");
  }
}

void quant_gemv_rows_tokens(DType t, const void* w, int64_t rows, const QuantizedActivations* x, int64_t ntok, int64_t r0,
                            int64_t r1, float* y, int64_t ldy) {
  const auto* base = static_cast<const uint8_t*>(w);
  const size_t stride = row_bytes(t, x[0].n);
  switch (t) {
    case DType::Q8_0: return gemv_tokens_typed<DType::Q8_0>(base, stride, x, ntok, r0, r1, y, ldy);
    case DType::Q4_0: return gemv_tokens_typed<DType::Q4_0>(base, stride, x, ntok, r0, r1, y, ldy);
    case DType::Q4_1: return gemv_tokens_typed<DType::Q4_1>(base, stride, x, ntok, r0, r1, y, ldy);
    case DType::Q4_K: return gemv_tokens_typed<DType::Q4_K>(base, stride, x, ntok, r0, r1, y, ldy);
    case DType::Q6_K: return gemv_tokens_typed<DType::Q6_K>(base, stride, x, ntok, r0, r1, y, ldy);
    default:  // interleaved layouts: their kernel is the same for any token count
      for (int64_t i = 0; i < ntok; ++i) quant_gemv_rows(t, w, rows, x[0].n, x[i], r0, r1, y + i * ldy);
  }
}

void quant_gemm_rows(DType t, const void* w, int64_t rows, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1,
                     float* y, int64_t ldy) {
  const auto* base = static_cast<const uint8_t*>(w);
  const size_t stride = row_bytes(t, x[0].n);
  switch (t) {
    case DType::Q8_0: return gemm_typed<DType::Q8_0>(base, stride, x, ntok, r0, r1, y, ldy);
    case DType::Q4_0: return gemm_typed<DType::Q4_0>(base, stride, x, ntok, r0, r1, y, ldy);
    case DType::Q4_1: return gemm_typed<DType::Q4_1>(base, stride, x, ntok, r0, r1, y, ldy);
    case DType::Q4_K: return gemm_typed<DType::Q4_K>(base, stride, x, ntok, r0, r1, y, ldy);
    case DType::Q6_K: return gemm_typed<DType::Q6_K>(base, stride, x, ntok, r0, r1, y, ldy);
    case DType::Q4_0x8: case DType::Q8_0x8: case DType::Q4_1x8: case DType::Q4_Kx8: case DType::Q6_Kx8:
      return gemm_interleaved(t, base, rows, x, ntok, r0, r1, y, ldy);
    default: throw Error(std::string("quant_gemm_rows: ") + dtype_name(t) + " is not a block type");
  }
}

DType interleaved_type(DType t, int64_t rows, int64_t cols) {
  DType fast;
  switch (t) {
    case DType::Q4_0: fast = DType::Q4_0x8; break;
    case DType::Q8_0: fast = DType::Q8_0x8; break;
    case DType::Q4_1: fast = DType::Q4_1x8; break;
    case DType::Q4_K: fast = DType::Q4_Kx8; break;
    case DType::Q6_K: fast = DType::Q6_Kx8; break;
    default: return t;
  }
  return kBestIsa == Isa::Vnni && rows % 8 == 0 && cols % segment_elements(t) == 0 ? fast : t;
}

void interleave_groups(DType t, const uint8_t* src, uint8_t* dst, int64_t rows, int64_t cols, int64_t g0, int64_t g1) {
  const ColumnChunks ch = column_chunks(t, rows, cols);
  const size_t seg = ch.col_bytes / 8, row_b = row_bytes(t, cols);
  for (int64_t g = g0; g < g1; ++g)
    for (int64_t c = 0; c < ch.ncol; ++c)
      for (int r = 0; r < 8; ++r) x8_put(t, src + size_t(8 * (g - g0) + r) * row_b + size_t(c) * seg, r, dst + ch.offset(g, c));
}

void interleave_rows(DType t, const uint8_t* src, uint8_t* dst, int64_t rows, int64_t cols) {
  interleave_groups(t, src, dst, rows, cols, 0, rows / 8);
}

void dequantize_interleaved_row(DType t, const void* base, int64_t rows, int64_t row, int64_t cols, float* out) {
  const DType plain = plain_type(t);
  const ColumnChunks ch = column_chunks(plain, rows, cols);
  const int64_t e = segment_elements(plain);
  uint8_t buf[sizeof(BlockQ6_K)];  // the largest segment (Q4_0: 72 bytes, Q8_0: 34)
  for (int64_t c = 0; c < ch.ncol; ++c) {
    x8_get(plain, static_cast<const uint8_t*>(base) + ch.offset(row / 8, c), int(row % 8), buf);
    dequantize_row(plain, buf, out + e * c, e);
  }
}

void dequantize_rows(DType t, const void* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1, float* out) {
  if (kBestIsa == Isa::Vnni) return dequantize_rows_avx512(t, static_cast<const uint8_t*>(w), rows, cols, r0, r1, out);
  if (kBestIsa == Isa::Avx2 && !is_interleaved(t)) {
    const auto* base = static_cast<const uint8_t*>(w);
    const size_t stride = row_bytes(t, cols);
    for (int64_t r = r0; r < r1; ++r, out += cols) switch (t) {
        case DType::Q8_0: dequantize_row_avx2<DType::Q8_0>(base + size_t(r) * stride, cols, out); break;
        case DType::Q4_0: dequantize_row_avx2<DType::Q4_0>(base + size_t(r) * stride, cols, out); break;
        case DType::Q4_1: dequantize_row_avx2<DType::Q4_1>(base + size_t(r) * stride, cols, out); break;
        case DType::Q4_K: dequantize_row_avx2<DType::Q4_K>(base + size_t(r) * stride, cols, out); break;
        case DType::Q6_K: dequantize_row_avx2<DType::Q6_K>(base + size_t(r) * stride, cols, out); break;
        default: dequantize_row(t, base + size_t(r) * stride, out, cols);
      }
    return;
  }
  for (int64_t r = r0; r < r1; ++r, out += cols) {
    if (is_interleaved(t)) dequantize_interleaved_row(t, w, rows, r, cols, out);
    else dequantize_row(t, static_cast<const uint8_t*>(w) + size_t(r) * row_bytes(t, cols), out, cols);
  }
}

const char* quant_isa() { return g_isa == Isa::Vnni ? "avx512-vnni" : g_isa == Isa::Avx2 ? "avx2" : "scalar"; }

void quant_force_isa(const char* isa) {
  const std::string s = isa ? isa : "";
  if (s.empty()) g_isa = kBestIsa;
  else if (s == "scalar") g_isa = Isa::Scalar;
  else if (s == "avx2" && kBestIsa != Isa::Scalar) g_isa = Isa::Avx2;
}

}  // namespace zephyr

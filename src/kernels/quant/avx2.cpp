// The integer products on AVX2 for plain rows, 32 elements (8 lanes) per step: pmaddubsw +
// pmaddwd produce the lane sums vpdpbusd does on AVX-512 VNNI (see isa.h); and the rows'
// vectorised dequantization.
#include <type_traits>

#include "kernels/quant/isa.h"

namespace zephyr::quant {

namespace {

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

// Rows 4 at a time (sharing the activation loads), the rest one by one.
template <DType T>
void gemv_typed(const uint8_t* w, size_t stride, const QuantizedActivations& x, int64_t r0, int64_t r1, float* y) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) rows_dot_avx2<T, 4>(w + size_t(r) * stride, stride, x, y + r);
  for (; r < r1; ++r) rows_dot_avx2<T, 1>(w + size_t(r) * stride, stride, x, y + r);
}

template <DType T>
void gemm_typed(const uint8_t* w, size_t stride, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1, float* y,
                int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= ntok; t += 4)
    for (int64_t r = r0; r < r1; ++r) row_dot_avx2_tokens<T, 4>(w + size_t(r) * stride, x + t, y + t * ldy + r, ldy);
  for (; t < ntok; ++t)
    for (int64_t r = r0; r < r1; ++r) row_dot_avx2_tokens<T, 1>(w + size_t(r) * stride, x + t, y + t * ldy + r, ldy);
}

}  // namespace

void gemv_avx2(DType t, const uint8_t* w, size_t stride, const QuantizedActivations& x, int64_t r0, int64_t r1, float* y) {
  with_block_type(t, [&](auto T) { gemv_typed<decltype(T)::value>(w, stride, x, r0, r1, y); });
}

void gemm_avx2(DType t, const uint8_t* w, size_t stride, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1,
               float* y, int64_t ldy) {
  with_block_type(t, [&](auto T) { gemm_typed<decltype(T)::value>(w, stride, x, ntok, r0, r1, y, ldy); });
}

void dequantize_rows_avx2(DType t, const uint8_t* w, size_t stride, int64_t cols, int64_t r0, int64_t r1, float* out) {
  for (int64_t r = r0; r < r1; ++r, out += cols) {
    const uint8_t* row = w + size_t(r) * stride;
    const bool block = with_block_type(t, [&](auto T) { dequantize_row_avx2<decltype(T)::value>(row, cols, out); });
    if (!block) dequantize_row(t, row, out, cols);
  }
}

}  // namespace zephyr::quant

// The integer products of the interleaved layouts (interleave.h, interleaved_layout.h) on AVX-512
// VNNI: 8 rows per group against 1, 4 or 8 tokens at a time.

// GCC 12 warns inside its own AVX-512 headers about variables it initialises itself.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <cstring>

#include "kernels/quant/interleaved_layout.h"
#include "kernels/quant/isa.h"

namespace zephyr::quant {

namespace {

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

}  // namespace

// Rows [r0, r1) (whole groups) of an interleaved [rows, n] matrix against ntok tokens, column
// chunk by column chunk (the first one stores y, the others add to it): within a chunk the rows
// in blocks of ~256 KB that stay in L2 while the tokens pass them 8 at a time (8 tokens'
// accumulators, 16 registers, leave room for the unpacked weights; 8 beat 4 by ~20% for Q8_0,
// ~4% for Q4_K).
void gemm_interleaved(DType t, const uint8_t* w, int64_t rows, const QuantizedActivations* x, int64_t ntok, int64_t r0,
                      int64_t r1, float* y, int64_t ldy) {
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

}  // namespace zephyr::quant

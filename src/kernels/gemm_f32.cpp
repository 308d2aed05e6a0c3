#include "kernels/gemm_f32.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>

#include "core/buffer.h"
#include "core/cpu_isa.h"
#include "core/parallel.h"
#include "kernels/gemm_tile.h"

// GCC 12 warns inside its own AVX-512 headers about variables it initialises itself.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace zephyr {

namespace {

#define Z_F32 __attribute__((target("avx512f,fma")))

// Micro-tile: 8 rows x 32 columns = 16 zmm accumulators, fed per k by 2 loads of B and 8
// broadcasts of A — the bf16 GEMM's tile with one fp32 value where it has a bf16 pair. From L1 it
// runs at the FMA peak here (Zen 5: 280 GFLOPS a core); on the 56M model's training shapes, packing
// included, 445-528 GFLOPS on 2 cores where OpenBLAS's SkylakeX SGEMM runs 396-484.
constexpr int64_t MR = 8, NR = 32;

// Panels of R rows (8: A, 32: B), k-major: panel[k][r] = x[r][k], zero past the matrix's rows.
// store16 writes rows [r0, r0 + 16) of column k (16 rows fill two 8-row panels or half a 32-row one).
Z_F32 inline void store16(float* out, int64_t K, int64_t R, int64_t r0, int64_t k, __m512i v) {
  if (R == 32) {
    _mm512_storeu_si512(out + (r0 / 32) * K * 32 + k * 32 + r0 % 32, v);
  } else {
    float* panel = out + (r0 / 8) * K * 8;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(panel + k * 8), _mm512_castsi512_si256(v));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(panel + (K + k) * 8), _mm512_extracti64x4_epi64(v, 1));
  }
}

// Rows [r0, r0 + 16) of x [rows, K] packed: given row-major (x[r * ld + k]) 16 values of 16 rows
// at a time, transposed in registers; given k-major (x[k * ld + r], a transposed operand) a
// column's 16 rows in one load.
Z_F32 void pack16(const float* x, int64_t ld, bool k_major, int64_t rows, int64_t r0, int64_t K, int64_t R, float* out) {
  const int64_t nr = std::clamp<int64_t>(rows - r0, 0, 16);
  if (k_major) {
    const __mmask16 m = __mmask16((1u << nr) - 1);
    for (int64_t k = 0; k < K; ++k) store16(out, K, R, r0, k, _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + k * ld + r0)));
    return;
  }
  for (int64_t k = 0; k < K; k += 16) {
    const int64_t nk = std::min<int64_t>(16, K - k);
    const __mmask16 m = __mmask16((1u << nk) - 1);
    __m512i v[16];
    for (int64_t i = 0; i < 16; ++i)
      v[i] = i < nr ? _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + (r0 + i) * ld + k)) : _mm512_setzero_si512();
    transpose16(v);
    for (int64_t j = 0; j < nk; ++j) store16(out, K, R, r0, k + j, v[j]);
  }
}

// x [rows, K] (k_major: given as [K, rows]) packed into panels of R rows, across threads. Room for
// the rows rounded up to 16.
Buffer pack(const float* x, int64_t ld, bool k_major, int64_t rows, int64_t K, int64_t R) {
  const int64_t groups = ((rows + R - 1) / R * R + 15) / 16;
  Buffer out(size_t(groups * 16 * K));
  parallel_for_balanced(size_t(groups), 1, [&](size_t g0, size_t g1) {
    for (size_t g = g0; g < g1; ++g) pack16(x, ld, k_major, rows, int64_t(g) * 16, K, R, out.data());
  });
  return out;
}

// C tile (+)= A · B panel over K. A is a packed panel (a_ld 0) or, given row-major, read where it
// lies (its rows a_ld apart; rows past `rows` read as row 0, their sums never stored): the
// broadcasts take one value at a time either way, so A needs no transposing pack — which, for the
// lm_head's input gradient (A = the logits' gradient, rows 128 KB apart, from memory), took a
// fifth of the product. The accumulators are named variables, as in the bf16 kernel (an array of
// them GCC moved through the stack around the loop).
template <bool kRowMajorA>
Z_F32 void micro_kernel(const float* ap, int64_t a_ld, const float* bp, int64_t K, float* c, int64_t ldc, int64_t rows,
                        int64_t cols, bool accumulate) {
  for (int i = 0; i < MR && i < rows; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
  }
#define Z_ACC(i) __m512 acc##i##0 = _mm512_setzero_ps(), acc##i##1 = _mm512_setzero_ps();
  Z_ACC(0) Z_ACC(1) Z_ACC(2) Z_ACC(3) Z_ACC(4) Z_ACC(5) Z_ACC(6) Z_ACC(7)
#undef Z_ACC
#define Z_FMA(i, value)                                 \
  {                                                     \
    const __m512 ai = _mm512_set1_ps(value);            \
    acc##i##0 = _mm512_fmadd_ps(ai, b0, acc##i##0);     \
    acc##i##1 = _mm512_fmadd_ps(ai, b1, acc##i##1);     \
  }
  if constexpr (kRowMajorA) {
#define Z_ROW(i) const float* a##i = ap + std::min<int64_t>(i, rows - 1) * a_ld;
    Z_ROW(0) Z_ROW(1) Z_ROW(2) Z_ROW(3) Z_ROW(4) Z_ROW(5) Z_ROW(6) Z_ROW(7)
#undef Z_ROW
    for (int64_t k = 0; k < K; ++k) {
      const __m512 b0 = _mm512_loadu_ps(bp + k * NR), b1 = _mm512_loadu_ps(bp + k * NR + 16);
      Z_FMA(0, a0[k]) Z_FMA(1, a1[k]) Z_FMA(2, a2[k]) Z_FMA(3, a3[k]) Z_FMA(4, a4[k]) Z_FMA(5, a5[k]) Z_FMA(6, a6[k])
      Z_FMA(7, a7[k])
    }
  } else {
    for (int64_t k = 0; k < K; ++k) {
      const __m512 b0 = _mm512_loadu_ps(bp + k * NR), b1 = _mm512_loadu_ps(bp + k * NR + 16);
      const float* a = ap + k * MR;
      Z_FMA(0, a[0]) Z_FMA(1, a[1]) Z_FMA(2, a[2]) Z_FMA(3, a[3]) Z_FMA(4, a[4]) Z_FMA(5, a[5]) Z_FMA(6, a[6]) Z_FMA(7, a[7])
    }
  }
#undef Z_FMA
  __mmask16 m0, m1;
  tile_masks(cols, m0, m1);
#define Z_STORE(i) \
  if ((i) < rows) store_tile_row(c + (i) * ldc, acc##i##0, acc##i##1, m0, m1, accumulate);
  Z_STORE(0) Z_STORE(1) Z_STORE(2) Z_STORE(3) Z_STORE(4) Z_STORE(5) Z_STORE(6) Z_STORE(7)
#undef Z_STORE
}

std::atomic<bool> enabled{true};

}  // namespace

bool gemm_f32_available() { return cpu_isa() >= CpuIsa::kAvx512 && enabled.load(std::memory_order_relaxed); }
void set_gemm_f32_enabled(bool on) { enabled.store(on, std::memory_order_relaxed); }

namespace {

// The product, B packed here or given packed (b_packed: then A is the outer operand).
void gemm(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, bool transpose_a, const float* b, int64_t ldb,
          bool transpose_b, const F32PanelsView* b_packed, float* c, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  const int64_t mp = (M + MR - 1) / MR, np = (N + NR - 1) / NR;
  // The larger operand is the outer one: a thread packs one of its panels (16 rows of A or 32 of
  // B) into its own buffer (or reads A in place, below) and multiplies it, from L1/L2, by every panel of the other, which is
  // packed whole beforehand and streams from L2/L3. Packed whole first, the lm_head's 65 MB
  // weight went out to memory and came back (511 x 32000 x 512: 336 GFLOPS, OpenBLAS 462).
  // K runs whole up to 1024, longer in blocks of 512 (fixed by K alone, so a row's sums do not
  // depend on M or N), which keep the other operand's packed block in cache (the lm_head's input
  // gradient, K = 32000: 222 GFLOPS with K whole and both operands packed first, 401 this way);
  // each block's sum is added to C.
  const bool a_outer = b_packed || mp * MR > np * NR;
  struct Operand {
    const float* x;
    int64_t ld, rows, R;
    bool k_major;
    const float* block(int64_t k0) const { return k_major ? x + k0 * ld : x + k0; }
  };
  const Operand A{a, lda, M, MR, transpose_a}, B{b, ldb, N, NR, transpose_b};
  const Operand& outer = a_outer ? A : B;
  const Operand& inner = a_outer ? B : A;
  const int64_t unit = std::max<int64_t>(outer.R, 16), units = (outer.rows + unit - 1) / unit;
  const int64_t inner_panels = (inner.rows + inner.R - 1) / inner.R;
  const int64_t kc_max = K <= 1024 ? std::max<int64_t>(K, 1) : 512;
  // A given row-major is read in place (micro_kernel) where it is the outer operand, and as the
  // inner one over blocks of a long K (the lm_head's input gradient: 400 -> 465 GFLOPS); an inner
  // A over a whole K is packed still: read in place, the lm_head's forward ran 7% slower (each
  // tile's 8 short row streams, where the packs stream as one).
  const bool a_packed = transpose_a || (!a_outer && K <= 1024);
  const bool pack_inner = a_outer || a_packed, pack_outer = !a_outer || a_packed;
  for (int64_t k0 = 0; k0 < std::max<int64_t>(K, 1); k0 += kc_max) {
    const int64_t kc = std::min(kc_max, K - k0);
    const Buffer inner_pack =
        pack_inner && !b_packed ? pack(inner.block(k0), inner.ld, inner.k_major, inner.rows, kc, inner.R) : Buffer();
    // inner panel j: at inner_base + j * inner_stride, k-major from k0
    const float* inner_base = b_packed ? b_packed->data + k0 * NR : inner_pack.data();
    const int64_t inner_stride = b_packed ? b_packed->panel_stride : inner.R * kc;
    const bool acc = accumulate || k0 > 0;
    parallel_for_balanced(size_t(units), 1, [&](size_t u0, size_t u1) {
      thread_local Buffer panel;
      if (panel.size() < size_t(unit * kc)) panel.resize(size_t(unit * kc));
      for (size_t u = u0; u < u1; ++u) {
        const int64_t r0 = int64_t(u) * unit, rows = std::min(unit, outer.rows - r0);
        const float* x = outer.k_major ? outer.block(k0) + r0 : outer.block(k0) + r0 * outer.ld;
        if (pack_outer)
          for (int64_t g = 0; g < unit; g += 16) pack16(x, outer.ld, outer.k_major, rows, g, kc, outer.R, panel.data());
        for (int64_t sub = 0; sub * outer.R < rows; ++sub) {
          const float* op = pack_outer ? panel.data() + sub * outer.R * kc : x + sub * MR * lda;
          const int64_t o = r0 / outer.R + sub;  // the outer panel's index in C
          for (int64_t j = 0; j < inner_panels; ++j) {
            const float* ip = pack_inner ? inner_base + j * inner_stride : A.block(k0) + j * MR * lda;
            const int64_t p = a_outer ? o : j, q = a_outer ? j : o;
            float* ct = c + p * MR * ldc + q * NR;
            const int64_t tile_rows = std::min(MR, M - p * MR), tile_cols = std::min(NR, N - q * NR);
            if (a_packed) micro_kernel<false>(a_outer ? op : ip, 0, a_outer ? ip : op, kc, ct, ldc, tile_rows, tile_cols, acc);
            else micro_kernel<true>(a_outer ? op : ip, lda, a_outer ? ip : op, kc, ct, ldc, tile_rows, tile_cols, acc);
          }
        }
      }
    });
  }
}

}  // namespace

void gemm_f32(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, bool transpose_a, const float* b, int64_t ldb,
              bool transpose_b, float* c, int64_t ldc, bool accumulate) {
  gemm(M, N, K, a, lda, transpose_a, b, ldb, transpose_b, nullptr, c, ldc, accumulate);
}

void gemm_f32(int64_t M, const float* a, int64_t lda, bool transpose_a, const F32PanelsView& b, float* c, int64_t ldc,
              bool accumulate) {
  gemm(M, b.n, b.k, a, lda, transpose_a, nullptr, 0, false, &b, c, ldc, accumulate);
}

F32Panels::F32Panels(const float* b, int64_t ldb, bool transpose_b, int64_t N, int64_t K)
    : n_(N), k_(K), data_(pack(b, ldb, transpose_b, N, K, NR)) {}

F32PanelsView F32Panels::view(int64_t n0, int64_t n, int64_t k0, int64_t k) const {
  return {data_.data() + n0 / NR * NR * k_ + k0 * NR, n, k, NR * k_};
}

}  // namespace zephyr

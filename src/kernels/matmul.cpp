#include "kernels/matmul.h"

#include <cblas.h>
// GCC 12 warns inside its own AVX-512 headers (_mm512_reduce_add_ps) about a variable it
// initialises itself; the warning is a known false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "core/cpu_isa.h"
#include "core/parallel.h"
#include "core/target_clones.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_f32.h"
#include "kernels/quant/activations.h"
#include "kernels/quant/formats.h"
#include "kernels/quant/interleave.h"
#include "kernels/quant/products.h"

namespace zephyr {

namespace {

// ---- AVX-512 GEMV: two accumulators per row hide the FMA latency. Weights are widened to fp32 exactly (bf16 is the top half of an fp32; f16 via
// vcvtph2ps), so the result does not depend on the kernel.
#define Z_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma")))

Z_AVX512 inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
Z_AVX512 inline __m512 load16(const uint16_t* p, __mmask16 m, DType t) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  if (t == DType::BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}

template <DType T>
Z_AVX512 inline __m512 wload(const void* w, int64_t i, __mmask16 m) {
  if constexpr (T == DType::F32) return load16(static_cast<const float*>(w) + i, m);
  else return load16(static_cast<const uint16_t*>(w) + i, m, T);
}

template <DType T, int R>
Z_AVX512 inline void gemv_block(const float* x, const uint8_t* row0, int64_t cols, float* y) {
  const int64_t stride = cols * int64_t(dtype_size(T));
  const __mmask16 full = 0xffff;
  __m512 a[R], b[R];
  for (int i = 0; i < R; ++i) a[i] = b[i] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= cols; k += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16);
    for (int i = 0; i < R; ++i) {
      a[i] = _mm512_fmadd_ps(wload<T>(row0 + i * stride, k, full), x0, a[i]);
      b[i] = _mm512_fmadd_ps(wload<T>(row0 + i * stride, k + 16, full), x1, b[i]);
    }
  }
  for (; k < cols; k += 16) {
    const __mmask16 m = cols - k >= 16 ? full : __mmask16((1u << (cols - k)) - 1);
    const __m512 x0 = load16(x + k, m);
    for (int i = 0; i < R; ++i) a[i] = _mm512_fmadd_ps(wload<T>(row0 + i * stride, k, m), x0, a[i]);
  }
  for (int i = 0; i < R; ++i) y[i] = _mm512_reduce_add_ps(_mm512_add_ps(a[i], b[i]));
}

template <DType T>
Z_AVX512 void gemv_avx512(const float* x, const Matrix& w, int64_t r0, int64_t r1, float* y) {
  const int64_t stride = w.cols * int64_t(dtype_size(T));
  const auto* base = static_cast<const uint8_t*>(w.data);
  int64_t r = r0;
  // While x fits in L1 (<= 4096 floats), one row at a time reads W as a single sequential stream,
  // which the hardware prefetcher serves best (bench/gemv_throughput: ~97% of a plain read vs
  // ~91% for four interleaved rows). A longer x would be re-read from L2 for every row (~70%), so
  // then four rows share its loads (~96%).
  if (w.cols > 4096)
    for (; r + 4 <= r1; r += 4) gemv_block<T, 4>(x, base + r * stride, w.cols, y + r);
  for (; r < r1; ++r) gemv_block<T, 1>(x, base + r * stride, w.cols, y + r);
}

// ---- Portable GEMV for CPUs without AVX-512; the compiler vectorises it for AVX2 where present.
template <DType T>
inline float widen(const void* w, int64_t i) {
  if constexpr (T == DType::F32) return static_cast<const float*>(w)[i];
  else if constexpr (T == DType::BF16) return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
  else return f16_to_f32(static_cast<const uint16_t*>(w)[i]);
}

template <DType T>
ZEPHYR_CLONES_V3
void gemv_generic(const float* x, const Matrix& w, int64_t r0, int64_t r1, float* y) {
  const int64_t cols = w.cols;
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t r = r0; r < r1; ++r) {
    const void* row = base + r * cols * int64_t(dtype_size(T));
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < cols; ++k) s += widen<T>(row, k) * x[k];
    y[r] = s;
  }
}

// F16 rows without AVX-512: F16C widens 8 halves per instruction (the portable loop calls the
// out-of-line scalar conversion for every element, ~20x slower).
__attribute__((target("avx2,fma,f16c"))) void gemv_f16_avx2(const float* x, const Matrix& w, int64_t r0, int64_t r1, float* y) {
  const int64_t cols = w.cols;
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* row = static_cast<const uint16_t*>(w.data) + r * cols;
    __m256 a = _mm256_setzero_ps(), b = a;
    int64_t k = 0;
    for (; k + 16 <= cols; k += 16) {
      a = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k))), _mm256_loadu_ps(x + k), a);
      b = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k + 8))), _mm256_loadu_ps(x + k + 8), b);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_add_ps(a, b));
    float s = lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
    for (; k < cols; ++k) s += f16_to_f32(row[k]) * x[k];
    y[r] = s;
  }
}

bool has_avx2() { return cpu_isa() >= CpuIsa::kAvx2; }
bool has_avx512() { return cpu_isa() >= CpuIsa::kAvx512; }

// Rows per panel when a 16-bit matrix is widened for SGEMM: ~2 MB of fp32, so a panel stays in L3.
int64_t panel_rows(int64_t cols) { return std::max<int64_t>(16, (int64_t(1) << 19) / std::max<int64_t>(cols, 1)); }

// C[M, N] = alpha·op(A)·op(B) + beta·C (row-major, as cblas_sgemm): every fp32 GEMM goes through
// here. The larger of M and N is split across zephyr's pool, each part a single-threaded sgemm (the
// pool runs BLAS on one thread inside its tasks; a product too small to split runs as one call). OpenBLAS's own
// OpenMP team kept spinning between a training step's GEMMs while the pool's loops ran, and the two
// teams took the two cores from each other: the 56M fp32 SFT step ran 564 tok/s, 666 this way.
void pooled_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb,
                  float beta, float* c, int64_t ldc, float alpha = 1.0f) {
  const auto tra = ta ? CblasTrans : CblasNoTrans, trb = tb ? CblasTrans : CblasNoTrans;
  if (M >= N)
    parallel_for(size_t(M), 64, [&](size_t m0, size_t m1) {
      cblas_sgemm(CblasRowMajor, tra, trb, int(m1 - m0), int(N), int(K), alpha, ta ? a + m0 : a + m0 * size_t(lda), int(lda), b,
                  int(ldb), beta, c + m0 * size_t(ldc), int(ldc));
    });
  else
    parallel_for(size_t(N), 64, [&](size_t n0, size_t n1) {
      cblas_sgemm(CblasRowMajor, tra, trb, int(M), int(n1 - n0), int(K), alpha, a, int(lda), tb ? b + n0 * size_t(ldb) : b + n0,
                  int(ldb), beta, c + n0, int(ldc));
    });
}

}  // namespace

void gemv_rows(const float* x, const Matrix& w, int64_t r0, int64_t r1, float* y) {
  switch (w.dtype) {
    case DType::F32: return has_avx512() ? gemv_avx512<DType::F32>(x, w, r0, r1, y) : gemv_generic<DType::F32>(x, w, r0, r1, y);
    case DType::BF16: return has_avx512() ? gemv_avx512<DType::BF16>(x, w, r0, r1, y) : gemv_generic<DType::BF16>(x, w, r0, r1, y);
    case DType::F16:
      if (has_avx512()) return gemv_avx512<DType::F16>(x, w, r0, r1, y);
      return has_avx2() ? gemv_f16_avx2(x, w, r0, r1, y) : gemv_generic<DType::F16>(x, w, r0, r1, y);
    default: {
      QuantizedActivations a;
      quantize_activations(x, w.cols, a, w.dtype);
      quant_gemv_rows(w.dtype, w.data, w.rows, w.cols, a, r0, r1, y);
    }
  }
}

const char* gemv_isa() { return has_avx512() ? "avx512" : has_avx2() ? "avx2" : "generic"; }

void matmul_backward(const float* x, int64_t n, const Matrix& w, const float* dy, float* dx, float* dw, float alpha,
                     bool dx_fresh) {
  if (n <= 0) return;
  const auto* wf = static_cast<const float*>(w.data);
  if (dx) pooled_sgemm(false, false, n, w.cols, w.rows, dy, w.rows, wf, w.cols, dx_fresh ? 0.0f : 1.0f, dx, w.cols, alpha);
  if (dw) pooled_sgemm(true, false, w.rows, w.cols, n, dy, w.rows, x, w.cols, 1.0f, dw, w.cols, alpha);
}

void matrix_row(const Matrix& w, int64_t row, float* out) {
  if (is_interleaved(w.dtype)) return dequantize_interleaved_row(w.dtype, w.data, w.rows, row, w.cols, out);
  dequantize_row(w.dtype, static_cast<const uint8_t*>(w.data) + size_t(row) * row_bytes(w.dtype, w.cols), out, w.cols);
}

namespace {

// From this many tokens on, block-quantized weights that are not interleaved are dequantized to
// panels for a GEMM (the bf16 one where the CPU has AVX-512 BF16; else BLAS's sgemm) instead of
// running the row-at-a-time int8 dot products: their per-block scale arithmetic costs more than
// the dequantization. (The interleaved kernels amortise it over 8 rows and 8 tokens.)
constexpr int64_t kQuantGemmTokens = 32;

// y = x·Wᵀ through panels of W, P rows each (rows converted to fp32 by `fill`), for weight types
// the GEMMs cannot read: the bf16 GEMM where `bf16` (each 16 rows packed as they are converted),
// else fp32 panels (filled in thread chunks of `grain` rows) through gemm_f32 where `own_f32`
// (training, as its fp32 weights' products), else BLAS's sgemm. The bf16 GEMM reads x packed once
// for all panels (xa: packed by the caller): packed per panel, a 7B-shaped QLoRA step packed each
// layer's inputs ~200 times where 4 do.
template <class Fill>
void panel_gemm(const float* x, int64_t n, const Matrix& w, float* y, int64_t ldy, int64_t P, int64_t grain, bool bf16,
                bool own_f32, Fill fill, const Bf16Rows* xa = nullptr) {
  P = std::min(P, w.rows);
  if (bf16) {
    Bf16Rows packed_x;
    if (!(xa && xa->m() == n && xa->k() == w.cols)) {
      packed_x = Bf16Rows(x, w.cols, false, n, w.cols);
      xa = &packed_x;
    }
    for (int64_t r0 = 0; r0 < w.rows; r0 += P) {
      const int64_t rows = std::min(P, w.rows - r0);
      Bf16Panels b(rows, w.cols);
      pack_produced(
          rows, w.cols, [&](int64_t a, int64_t e, float* const* out) { fill(r0 + a, r0 + e, out[0]); }, &b, nullptr);
      gemm_bf16(*xa, b, y + r0, ldy, false);
    }
    return;
  }
  std::vector<float> panel(size_t(P * w.cols));
  for (int64_t r0 = 0; r0 < w.rows; r0 += P) {
    const int64_t rows = std::min(P, w.rows - r0);
    parallel_for(size_t(rows), size_t(grain), [&](size_t a, size_t b) {
      fill(r0 + int64_t(a), r0 + int64_t(b), panel.data() + a * size_t(w.cols));
    });
    if (own_f32) gemm_f32(n, rows, w.cols, x, w.cols, false, panel.data(), w.cols, false, y + r0, ldy, false);
    else pooled_sgemm(false, true, n, rows, w.cols, x, w.cols, panel.data(), w.cols, 0.0f, y + r0, ldy);
  }
}

// The int8 activations' buffers of the calling thread, for n tokens. Decode (~150 matmuls a
// token) and decode batches keep theirs: fresh ones for a 14336-wide row cost 49 us against 18 us
// reused, and a batch of 8 allocated and freed ~100 vectors per matmul (~1.5% of a step decoding 8
// SmolLM2 sequences). A prompt's many rows are not kept past the next small call.
QuantizedActivations* kept_activations(size_t n) {
  static thread_local std::vector<QuantizedActivations> kept;
  if (kept.size() > 64 && n <= 64) kept.resize(64);
  if (kept.size() < n) kept.resize(n);
  return kept.data();
}

// Block-quantized weights: few tokens (any number for interleaved layouts) quantize the
// activations to int8 once and split the rows across threads: for one token in blocks of 16,
// balanced (with a static split, 7B decode GEMVs waited 5-19% of their time for the later
// thread); 32 when several tokens share each row's unpacking; whole ranges for the interleaved
// kernels.
// rowwise: every row as for n = 1 (the batched engine), so never the GEMM.
// Q4_1x8 prompts take the GEMM too: SmolLM2 (the Q4_1 model we ship) carries activations of
// several hundred on a few channels, and the int8 activations of the integer kernels put its
// prompt logits up to 2.2 from a float reference where the fp32/bf16 panels stay within 0.43.
void matmul_quantized(const float* x, int64_t n, const Matrix& w, float* y, int64_t ldy, bool rowwise = false) {
  if (!rowwise && n >= kQuantGemmTokens && (!is_interleaved(w.dtype) || w.dtype == DType::Q4_1x8)) {
    // The bf16 GEMM's panels are larger (~16 MB of fp32 rows: chosen when it re-packed x for every
    // panel; 2 MB ones measured no faster since); sgemm's stay in L2/L3 (~2 MB).
    const bool bf16 = gemm_bf16_available();
    const int64_t P = bf16 ? std::max<int64_t>(256, (int64_t(1) << 22) / w.cols / 32 * 32) : panel_rows(w.cols);
    return panel_gemm(x, n, w, y, ldy, P, 1, bf16, false, [&](int64_t r0, int64_t r1, float* out) {
      dequantize_rows(w.dtype, w.data, w.rows, w.cols, r0, r1, out);
    });
  }
  if (n == 1) {
    QuantizedActivations& act = kept_activations(1)[0];  // the caller's (each thread has its own)
    quantize_activations(x, w.cols, act, w.dtype);
    parallel_for_balanced(size_t(w.rows), 16, [&](size_t r0, size_t r1) {
      quant_gemv_rows(w.dtype, w.data, w.rows, w.cols, act, int64_t(r0), int64_t(r1), y);  // n == 1: ldy unused
    });
    return;
  }
  QuantizedActivations* acts = kept_activations(size_t(n));
  parallel_for(size_t(n), 1, [&](size_t a, size_t b) {
    for (size_t t = a; t < b; ++t) quantize_activations(x + t * size_t(w.cols), w.cols, acts[t], w.dtype);
  });
  if (is_interleaved(w.dtype)) {  // whole thread ranges: the kernel blocks rows and tokens for the caches
    parallel_for(size_t(w.rows), 8, [&](size_t r0, size_t r1) {
      quant_gemm_rows(w.dtype, w.data, w.rows, acts, n, int64_t(r0), int64_t(r1), y, ldy);
    });
    return;
  }
  parallel_for(size_t(w.rows), 32, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r += 32)
      quant_gemm_rows(w.dtype, w.data, w.rows, acts, n, int64_t(r), int64_t(std::min(r + 32, r1)), y, ldy);
  });
}

// Rows [r0, r1) of any stored type to fp32.
void weight_rows(const Matrix& w, int64_t r0, int64_t r1, float* out) {
  if (is_quantized(w.dtype) || is_interleaved(w.dtype)) return dequantize_rows(w.dtype, w.data, w.rows, w.cols, r0, r1, out);
  for (int64_t r = r0; r < r1; ++r, out += w.cols) matrix_row(w, r, out);
}

// Panel height for the frozen-weight products: ~4 MB of fp32, whole 32-row panels of the bf16 GEMM
// (Mistral-7B's down_proj got 73 rows, three panels' work for 73 rows: 723 against ~1000 GFLOPS).
int64_t frozen_panel_rows(const Matrix& w) {
  return std::min(w.rows, std::max<int64_t>(64, (int64_t(1) << 20) / w.cols / 32 * 32));
}

}  // namespace

void thin_matmul(const float* x, int64_t n, const Matrix& w, float* y, float alpha, bool accumulate) {
  pooled_sgemm(false, true, n, w.rows, w.cols, x, w.cols, static_cast<const float*>(w.data), w.cols, accumulate ? 1.0f : 0.0f, y,
               w.rows, alpha);
}

void matmul_frozen(const float* x, int64_t n, const Matrix& w, float* y, bool bf16, const Bf16Rows* xa) {
  if (n <= 0) return;
  bf16 = bf16 && gemm_bf16_available();
  panel_gemm(
      x, n, w, y, w.rows, frozen_panel_rows(w), 8, bf16, gemm_f32_available(),
      [&](int64_t r0, int64_t r1, float* out) { weight_rows(w, r0, r1, out); }, xa);
}

void matmul_frozen_backward(const float* dy, int64_t n, const Matrix& w, float* dx, bool bf16, bool dx_fresh) {
  if (n <= 0) return;
  bf16 = bf16 && gemm_bf16_available();
  const int64_t P = frozen_panel_rows(w);
  std::vector<float> panel(size_t(bf16 ? 0 : P * w.cols));
  for (int64_t r0 = 0; r0 < w.rows; r0 += P) {
    const int64_t rows = std::min(P, w.rows - r0);
    const bool accumulate = r0 > 0 || !dx_fresh;
    // dx[n, cols] += dy[:, r0 : r0 + rows] · panel[rows, cols]; in bf16 the panel packed transposed
    // (as B: N = cols, K = rows) 16 rows at a time as they are dequantized.
    if (bf16) {
      Bf16Panels bt(w.cols, rows);
      pack_produced(
          rows, w.cols, [&](int64_t a, int64_t e, float* const* out) { weight_rows(w, r0 + a, r0 + e, out[0]); }, nullptr, &bt);
      gemm_bf16(Bf16Rows(dy + r0, w.rows, false, n, rows), bt, dx, w.cols, accumulate);
      continue;
    }
    parallel_for(size_t(rows), 8, [&](size_t a, size_t b) {
      weight_rows(w, r0 + int64_t(a), r0 + int64_t(b), panel.data() + a * size_t(w.cols));
    });
    if (gemm_f32_available()) gemm_f32(n, w.cols, rows, dy + r0, w.rows, false, panel.data(), w.cols, true, dx, w.cols, accumulate);
    else pooled_sgemm(false, false, n, w.cols, rows, dy + r0, w.rows, panel.data(), w.cols, accumulate ? 1.0f : 0.0f, dx, w.cols);
  }
}

size_t StackedMatrix::nbytes() const {
  size_t b = 0;
  for (const Matrix& m : parts) b += m.nbytes();
  return b;
}

void matmul(const float* x, int64_t n, const StackedMatrix& w, float* y) {
  int64_t offset = 0;
  for (const Matrix& m : w.parts) {
    matmul(x, n, m, y + offset, w.rows);
    offset += m.rows;
  }
}

void matmul_rowwise(const float* x, int64_t n, const StackedMatrix& w, float* y) {
  int64_t offset = 0;
  for (const Matrix& m : w.parts) {
    matmul_rowwise(x, n, m, y + offset, w.rows);
    offset += m.rows;
  }
}

void matmul_rowwise(const float* x, int64_t n, const Matrix& w, float* y, int64_t ldy) {
  if (n <= 0) return;
  if (ldy == 0) ldy = w.rows;
  // The interleaved kernels already give every token the same arithmetic for any token count.
  if (n == 1) return matmul(x, n, w, y, ldy);
  if (is_interleaved(w.dtype)) return matmul_quantized(x, n, w, y, ldy, true);
  // 16 rows (a few KB, kept in L1/L2) at a time through every token's decode kernel.
  if (!is_quantized(w.dtype)) {
    parallel_for_balanced(size_t(w.rows), 16, [&](size_t r0, size_t r1) {
      for (size_t r = r0; r < r1; r += 16)
        for (int64_t i = 0; i < n; ++i) gemv_rows(x + i * w.cols, w, int64_t(r), int64_t(std::min(r + 16, r1)), y + i * ldy);
    });
    return;
  }
  QuantizedActivations* acts = kept_activations(size_t(n));
  parallel_for(size_t(n), 1, [&](size_t a, size_t b) {
    for (size_t t = a; t < b; ++t) quantize_activations(x + t * size_t(w.cols), w.cols, acts[t], w.dtype);
  });
  parallel_for_balanced(size_t(w.rows), 16, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r += 16)
      quant_gemv_rows_tokens(w.dtype, w.data, w.rows, acts, n, int64_t(r), int64_t(std::min(r + 16, r1)), y, ldy);
  });
}

void matmul(const float* x, int64_t n, const Matrix& w, float* y, int64_t ldy) {
  if (n <= 0) return;
  if (ldy == 0) ldy = w.rows;
  if (is_quantized(w.dtype)) return matmul_quantized(x, n, w, y, ldy);
  if (n < 4) {
    // Rows split across threads in blocks of 16 so each thread streams its own part of W.
    parallel_for_balanced(size_t(w.rows), 16, [&](size_t r0, size_t r1) {
      for (int64_t i = 0; i < n; ++i) gemv_rows(x + i * w.cols, w, int64_t(r0), int64_t(r1), y + i * ldy);
    });
    return;
  }
  if (w.dtype == DType::F32) return pooled_sgemm(false, true, n, w.rows, w.cols, x, w.cols, static_cast<const float*>(w.data), w.cols, 0.0f, y, ldy);
  panel_gemm(x, n, w, y, ldy, panel_rows(w.cols), 1, false, false, [&](int64_t r0, int64_t r1, float* out) {
    for (int64_t r = r0; r < r1; ++r, out += w.cols) matrix_row(w, r, out);
  });
}

}  // namespace zephyr

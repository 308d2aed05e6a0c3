#include "kernels/gemm_bf16.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <memory>
#include <string>
#include <vector>

#include "core/cpu_isa.h"
#include "core/error.h"
#include "core/parallel.h"
#include "kernels/gemm_tile.h"

// GCC 12 warns inside its own AVX-512 headers about variables it initialises itself.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace zephyr {

namespace {

// Micro-tile: 8 rows x 32 columns = 16 zmm accumulators, fed per k-pair by 2 loads of B and 8
// broadcasts of A (~220 GFLOPS per core from L1 here). Blocking K into L1-sized pieces measured
// no faster on the training shapes (K = 512 ... 32000): the hardware prefetcher keeps up.
constexpr int64_t MR = 8, NR = 32;

#define Z_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// A pack's panels: rows per panel (8: an A, 32: a B) and, for an A the FMA kernel reads, its values
// widened to fp32 (each pair as two floats: the kernel broadcasts them straight from memory).
struct Panels {
  int64_t rows;
  bool wide = false;
  bool stream = false;  // Bf16Write::kStream
};

// malloc's block, 64-byte aligned within it, the block's address kept just before (glibc's
// aligned_alloc mapped large blocks anew on each call where malloc reuses them: a 2048^3 product,
// which packs 16 MB, ran 5-10% slower with it).
uint16_t* bf16_data(size_t n) {
  char* block = static_cast<char*>(std::malloc(n * sizeof(uint16_t) + 64 + sizeof(void*)));
  if (!block) throw std::bad_alloc();
  char* data = block + sizeof(void*) + (64 - reinterpret_cast<uintptr_t>(block + sizeof(void*)) % 64) % 64;
  std::memcpy(data - sizeof(void*), &block, sizeof(void*));
  return reinterpret_cast<uint16_t*>(data);
}

// bf16 to fp32 (exact): 16 bf16 to 16 floats.
Z_BF16 inline __m512i widen16(__m256i x) { return _mm512_slli_epi32(_mm512_cvtepu16_epi32(x), 16); }

// Stores pair p of rows r0..r0+15 (16 int32, each a pair of bf16) into the pack at out: 16
// consecutive int32 of a 32-row panel, or two 8-row panels. Every store is aligned to its size
// (the pack's storage is 64-byte aligned): streamed, consecutive pairs fill whole lines.
Z_BF16 inline void store_pair(uint16_t* out, Panels f, int64_t pairs, int64_t r0, int64_t p, __m512i v) {
  if (f.rows == 32) {
    auto* dst = reinterpret_cast<__m512i*>(reinterpret_cast<int32_t*>(out) + (r0 / 32) * pairs * 32 + p * 32 + r0 % 32);
    if (f.stream) _mm512_stream_si512(dst, v);
    else _mm512_storeu_si512(dst, v);
  } else if (!f.wide) {
    int32_t* panel = reinterpret_cast<int32_t*>(out) + (r0 / 8) * pairs * 8;
    auto* lo = reinterpret_cast<__m256i*>(panel + p * 8);
    auto* hi = reinterpret_cast<__m256i*>(panel + (pairs + p) * 8);
    if (f.stream) {
      _mm256_stream_si256(lo, _mm512_castsi512_si256(v));
      _mm256_stream_si256(hi, _mm512_extracti64x4_epi64(v, 1));
    } else {
      _mm256_storeu_si256(lo, _mm512_castsi512_si256(v));
      _mm256_storeu_si256(hi, _mm512_extracti64x4_epi64(v, 1));
    }
  } else {
    float* panel = reinterpret_cast<float*>(out) + (r0 / 8) * pairs * 16;
    const __m512i lo = widen16(_mm512_castsi512_si256(v)), hi = widen16(_mm512_extracti64x4_epi64(v, 1));
    if (f.stream) {
      _mm512_stream_si512(reinterpret_cast<__m512i*>(panel + p * 16), lo);
      _mm512_stream_si512(reinterpret_cast<__m512i*>(panel + (pairs + p) * 16), hi);
    } else {
      _mm512_storeu_si512(panel + p * 16, lo);
      _mm512_storeu_si512(panel + (pairs + p) * 16, hi);
    }
  }
}

// Word indices that interleave two rows of 16 bf16 into 16 pairs, (row 0, row 1) each: words i and
// 16 + i of one register (kInterleave, for vpermw), or words i of two (kInterleave2, vpermt2w:
// 32 + i is the second register's word i; + 16 takes the upper halves).
alignas(64) constexpr uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                  8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
alignas(64) constexpr uint16_t kInterleave2[32] = {0, 32, 1, 33, 2,  34, 3,  35, 4,  36, 5,  37, 6,  38, 7,  39,
                                                   8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};

// Packs a matrix into panels of R rows (R = 8 or 32) in k-pairs, panel[p][r][2] = (x[r][2p],
// x[r][2p+1]) as bf16 (round to nearest even), zero-padded past the matrix, panels `pairs` pairs
// apart; rows [r0, r0 + 16) are packed here. For a matrix stored with rows contiguous in k
// (x[r * ld + k]), 16 pairs of 16 rows are converted and transposed in registers (scattering each
// row's pairs was slow: this and no zero fill of the buffers took the training shapes from ~290 to
// ~326 GFLOPS); for one stored [K, rows] (x[k * ld + r]) two k-rows give the pairs of 16 rows in
// one store.
Z_BF16 void pack16(const float* x, int64_t ld, bool k_major, int64_t rows, int64_t r0, int64_t K, Panels f, uint16_t* out) {
  const int64_t pairs = (K + 1) / 2, nr = std::clamp<int64_t>(rows - r0, 0, 16);
  const __mmask16 rmask = __mmask16((1u << nr) - 1);
  if (k_major) {
    const __m512i interleave = _mm512_load_si512(kInterleave);
    for (int64_t p = 0; p < pairs; ++p) {
      const __m512 k0 = nr ? _mm512_maskz_loadu_ps(rmask, x + (2 * p) * ld + r0) : _mm512_setzero_ps();
      const __m512 k1 = nr && 2 * p + 1 < K ? _mm512_maskz_loadu_ps(rmask, x + (2 * p + 1) * ld + r0) : _mm512_setzero_ps();
      store_pair(out, f, pairs, r0, p, _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(k1, k0)));
    }
    return;
  }
  for (int64_t p = 0; p < pairs; p += 16) {
    const int64_t k = 2 * p, nk = std::min<int64_t>(32, K - k);
    const __mmask16 m0 = __mmask16(nk >= 16 ? 0xffffu : (1u << nk) - 1);
    const __mmask16 m1 = __mmask16(nk >= 32 ? 0xffffu : nk > 16 ? (1u << (nk - 16)) - 1 : 0);
    __m512i v[16];
    for (int64_t i = 0; i < 16; ++i) {
      if (i >= nr) {
        v[i] = _mm512_setzero_si512();
        continue;
      }
      const float* src = x + (r0 + i) * ld + k;
      v[i] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + 16), _mm512_maskz_loadu_ps(m0, src));
    }
    transpose16(v);
    for (int64_t j = 0; j < std::min<int64_t>(16, pairs - p); ++j) store_pair(out, f, pairs, r0, p + j, v[j]);
  }
}

// Rows [r0, r0 + 16) of x [rows, K] (row-major) packed two ways from one read: as panels of Ra rows
// over pairs of columns at `a` (what pack16 makes of x), and transposed — x's columns as the rows,
// pairs of x's rows as k — as panels of Rt rows at `t` (what pack16 makes of xᵀ given k-major).
// Either may be null.
// Packing xᵀ on its own reads 64 bytes of each of x's rows per 16 columns, a stride of a whole row
// from cache line to cache line; in the bf16 training step that pack took 2.6x the time of the
// row-wise one of the same gradients (0.50 vs 0.19 s of 8 steps of the 56M model).
// x holds the matrix's rows from x_row0 on (0: all of it; r0: a producer's 16 rows).
Z_BF16 void pack16_with_transpose(const float* x, int64_t x_row0, int64_t ld, int64_t rows, int64_t r0, int64_t K, Panels fa,
                                  uint16_t* a, Panels ft, uint16_t* t) {
  const int64_t pairs = (K + 1) / 2, t_pairs = (rows + 1) / 2, nr = std::clamp<int64_t>(rows - r0, 0, 16);
  const int64_t t_round = std::max<int64_t>(ft.rows, 16);  // the transposed pack's rows are written 16 at a time
  const __m512i interleave_lo = _mm512_load_si512(kInterleave2);
  const __m512i interleave_hi = _mm512_add_epi16(interleave_lo, _mm512_set1_epi16(16));
  for (int64_t k = 0; k < K; k += 32) {
    const int64_t nk = std::min<int64_t>(32, K - k);
    const __mmask16 m0 = __mmask16(nk >= 16 ? 0xffffu : (1u << nk) - 1);
    const __mmask16 m1 = __mmask16(nk >= 32 ? 0xffffu : nk > 16 ? (1u << (nk - 16)) - 1 : 0);
    // Each row's 32 values as bf16 in one register (16 registers in all: as 32 fp32 vectors GCC
    // spilled them around the transposes).
    __m512i v[16];
    for (int64_t i = 0; i < 16; ++i) {
      const float* src = x + (r0 + i - x_row0) * ld + k;
      v[i] = i < nr ? (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + 16), _mm512_maskz_loadu_ps(m0, src))
                    : _mm512_setzero_si512();
    }
    // Transposed: pair j of x's rows (r0 + 2j, r0 + 2j + 1) for 16 columns at a time, the two rows'
    // values interleaved by one vpermt2w.
    for (int64_t h = 0; t && h < 2 && k + 16 * h < (K + t_round - 1) / t_round * t_round; ++h) {  // padding rows: zeros
      const int64_t f0 = k + 16 * h;
      const __m512i idx = h ? interleave_hi : interleave_lo;
      for (int64_t j = 0; j < 8 && r0 / 2 + j < t_pairs; ++j)
        store_pair(t, ft, t_pairs, f0, r0 / 2 + j, _mm512_permutex2var_epi16(v[2 * j], idx, v[2 * j + 1]));
    }
    if (!a) continue;
    transpose16(v);
    for (int64_t j = 0; j < std::min<int64_t>(16, pairs - k / 2); ++j) store_pair(a, fa, pairs, r0, k / 2 + j, v[j]);
  }
}

void pack_with_transpose(const float* x, int64_t ld, int64_t M, int64_t K, Panels fa, uint16_t* a, Panels ft, uint16_t* t) {
  parallel_for_balanced(size_t(((M + fa.rows - 1) / fa.rows * fa.rows + 15) / 16), 1, [&](size_t g0, size_t g1) {
    for (size_t g = g0; g < g1; ++g) pack16_with_transpose(x, 0, ld, M, int64_t(g) * 16, K, fa, a, ft, t);
  });
  if (fa.stream || ft.stream) fence_streams();  // (run inline, the loop did not)
}

// Packs all panels of a matrix with `rows` rows, across threads. With 8-row panels and an odd panel
// count the last 16-row group also fills one panel past the end: the buffer holds it.
void pack(const float* x, int64_t ld, bool k_major, int64_t rows, int64_t K, Panels f, uint16_t* out) {
  const int64_t groups = ((rows + f.rows - 1) / f.rows * f.rows + 15) / 16;
  parallel_for_balanced(size_t(groups), 1, [&](size_t g0, size_t g1) {
    for (size_t g = g0; g < g1; ++g) pack16(x, ld, k_major, rows, int64_t(g) * 16, K, f, out);
  });
}

// C tile (+)= A micro-panel · B micro-panel over `pairs` k-pairs: A [pairs][8][2], B [pairs][32][2].
// (Z_ACC and Z_STORE serve both kernels.)
// The 16 accumulators are named variables: as an array GCC kept them in registers in the loop but
// stored and reloaded them through the stack around it (32 more memory operations a tile, ~10% of
// the kernel's samples outside its loop in the training step).
// kStream: a full tile stored over C by streaming stores (each row's 32 values two aligned lines).
template <bool kStream>
Z_BF16 void micro_kernel(const uint16_t* ap, const uint16_t* bp, int64_t pairs, float* c, int64_t ldc, int64_t rows,
                         int64_t cols, bool accumulate) {
  // C's lines are fetched while the tile computes: gradients accumulated into come from memory
  // (a weight's gradient was last touched a row earlier). One layer's products with cold caches
  // (microbenchmark, 3 alternated runs): 29.0 / 34.9 / 29.9 ms -> 28.8 / 26.9 / 26.2.
  for (int i = 0; !kStream && i < MR && i < rows; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
  }
#define Z_ACC(i) __m512 acc##i##0 = _mm512_setzero_ps(), acc##i##1 = _mm512_setzero_ps();
  Z_ACC(0) Z_ACC(1) Z_ACC(2) Z_ACC(3) Z_ACC(4) Z_ACC(5) Z_ACC(6) Z_ACC(7)
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp + p * NR * 2);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + p * NR * 2 + 32);
    const int* a = reinterpret_cast<const int*>(ap + p * MR * 2);
#define Z_DOT(i)                                                    \
  {                                                                 \
    const __m512bh ai = (__m512bh)_mm512_set1_epi32(a[i]);          \
    acc##i##0 = _mm512_dpbf16_ps(acc##i##0, ai, b0);                \
    acc##i##1 = _mm512_dpbf16_ps(acc##i##1, ai, b1);                \
  }
    Z_DOT(0) Z_DOT(1) Z_DOT(2) Z_DOT(3) Z_DOT(4) Z_DOT(5) Z_DOT(6) Z_DOT(7)
#undef Z_DOT
  }
#define Z_STREAM(i)                                   \
  _mm512_stream_ps(c + (i) * ldc, acc##i##0);         \
  _mm512_stream_ps(c + (i) * ldc + 16, acc##i##1);
  if (kStream) {
    Z_STREAM(0) Z_STREAM(1) Z_STREAM(2) Z_STREAM(3) Z_STREAM(4) Z_STREAM(5) Z_STREAM(6) Z_STREAM(7)
    return;
  }
  __mmask16 m0, m1;
  tile_masks(cols, m0, m1);
#define Z_STORE(i) \
  if ((i) < rows) store_tile_row(c + (i) * ldc, acc##i##0, acc##i##1, m0, m1, accumulate);
  Z_STORE(0) Z_STORE(1) Z_STORE(2) Z_STORE(3) Z_STORE(4) Z_STORE(5) Z_STORE(6) Z_STORE(7)
}

// The same tile with fp32 FMAs, A widened to fp32 when packed ([pairs][8][2] floats): Intel's
// vdpbf16ps (Emerald Rapids measured here) issues one every 2 cycles against two FMAs a cycle, 32
// against 64 flops, so there the bf16 products are faster widened (exact: a bf16 has 8 significant
// bits, a product 16) and multiplied by FMA: for each pair the odd product first, then the even,
// each added with one rounding, as the SDM specifies vdpbf16ps. B is widened in registers (2
// shifts and 2 masks a pair, for 32 FMAs that each broadcast their A value from memory). Widening
// A here instead, a chunk at a time into an L1 scratch, took ~18% of the kernel's samples.
#define Z_FMA __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
template <bool kStreamB, bool kStream>
Z_FMA void micro_kernel_fma(const float* ap, const uint16_t* bp, int64_t pairs, float* c, int64_t ldc, int64_t rows, int64_t cols,
                            bool accumulate) {
  for (int i = 0; !kStream && i < MR && i < rows; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
  }
  const __m512i odd_mask = _mm512_set1_epi32(int(0xffff0000u));
  Z_ACC(0) Z_ACC(1) Z_ACC(2) Z_ACC(3) Z_ACC(4) Z_ACC(5) Z_ACC(6) Z_ACC(7)
#undef Z_ACC
  const int32_t* b = reinterpret_cast<const int32_t*>(bp);
  for (int64_t p = 0; p < pairs; ++p) {
    if (kStreamB) {
      _mm_prefetch(reinterpret_cast<const char*>(b + (p + 8) * NR), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(b + (p + 8) * NR + 16), _MM_HINT_T0);
    }
    const __m512i r0 = _mm512_loadu_si512(b + p * NR), r1 = _mm512_loadu_si512(b + p * NR + 16);
    const __m512 b0e = _mm512_castsi512_ps(_mm512_slli_epi32(r0, 16)), b1e = _mm512_castsi512_ps(_mm512_slli_epi32(r1, 16));
    const __m512 b0o = _mm512_castsi512_ps(_mm512_and_si512(r0, odd_mask));
    const __m512 b1o = _mm512_castsi512_ps(_mm512_and_si512(r1, odd_mask));
    const float* w = ap + p * MR * 2;
    // Written out: from intrinsics GCC moved 8-9 registers a pair around its FMAs. Odd products
    // first, then even.
#define Z_ROW(i, odd, even)                                                          \
  "vfmadd231ps " #odd "(%[w])%{1to16%}, %[b0o], %[c" #i "0]\n\t"                     \
  "vfmadd231ps " #odd "(%[w])%{1to16%}, %[b1o], %[c" #i "1]\n\t"                     \
  "vfmadd231ps " #even "(%[w])%{1to16%}, %[b0e], %[c" #i "0]\n\t"                    \
  "vfmadd231ps " #even "(%[w])%{1to16%}, %[b1e], %[c" #i "1]\n\t"
    // (Two statements: an asm takes at most 30 operands.)
    asm(Z_ROW(0, 4, 0) Z_ROW(1, 12, 8) Z_ROW(2, 20, 16) Z_ROW(3, 28, 24)
        : [c00] "+v"(acc00), [c01] "+v"(acc01), [c10] "+v"(acc10), [c11] "+v"(acc11), [c20] "+v"(acc20), [c21] "+v"(acc21),
          [c30] "+v"(acc30), [c31] "+v"(acc31)
        : [w] "r"(w), [b0o] "v"(b0o), [b1o] "v"(b1o), [b0e] "v"(b0e), [b1e] "v"(b1e), "m"(*(const float(*)[16])w));
    asm(Z_ROW(4, 36, 32) Z_ROW(5, 44, 40) Z_ROW(6, 52, 48) Z_ROW(7, 60, 56)
        : [c40] "+v"(acc40), [c41] "+v"(acc41), [c50] "+v"(acc50), [c51] "+v"(acc51), [c60] "+v"(acc60), [c61] "+v"(acc61),
          [c70] "+v"(acc70), [c71] "+v"(acc71)
        : [w] "r"(w), [b0o] "v"(b0o), [b1o] "v"(b1o), [b0e] "v"(b0e), [b1e] "v"(b1e), "m"(*(const float(*)[16])w));
#undef Z_ROW
  }
  if (kStream) {
    Z_STREAM(0) Z_STREAM(1) Z_STREAM(2) Z_STREAM(3) Z_STREAM(4) Z_STREAM(5) Z_STREAM(6) Z_STREAM(7)
    return;
  }
#undef Z_STREAM
  __mmask16 m0, m1;
  tile_masks(cols, m0, m1);
  Z_STORE(0) Z_STORE(1) Z_STORE(2) Z_STORE(3) Z_STORE(4) Z_STORE(5) Z_STORE(6) Z_STORE(7)
#undef Z_STORE
}

// Intel's vdpbf16ps runs at half the FMA rate (above); AMD's Zen 4 at the same rate as FMA, with
// half the instructions.
Bf16Multiply multiply = (__builtin_cpu_init(), __builtin_cpu_is("intel")) ? Bf16Multiply::kFma : Bf16Multiply::kDotProduct;

}  // namespace

Bf16Multiply bf16_multiply() { return multiply; }
void set_bf16_multiply(Bf16Multiply m) { multiply = m; }

void Bf16Free::operator()(uint16_t* p) const {
  if (!p) return;
  void* block;
  std::memcpy(&block, reinterpret_cast<char*>(p) - sizeof(void*), sizeof(void*));
  std::free(block);
}

bool gemm_bf16_available() { return cpu_isa() >= CpuIsa::kAvx512Bf16; }

Bf16Panels::Bf16Panels(const float* b, int64_t ldb, bool transpose_b, int64_t N, int64_t K)
    : n_(N), k_(K), data_(bf16_data(size_t((N + NR - 1) / NR * ((K + 1) / 2) * NR * 2))) {
  // Not value-initialised: every element is written by the packing (a zero fill cost ~2%).
  pack(b, ldb, transpose_b, N, K, {NR}, data_.get());
}

Bf16Panels::Bf16Panels(int64_t N, int64_t K, Bf16Write write)
    : n_(N), k_(K), stream_(write == Bf16Write::kStream), data_(bf16_data(size_t((N + NR - 1) / NR * ((K + 1) / 2) * NR * 2))) {}

void pack_with_transpose(const float* x, int64_t ld, Bf16Rows& a, Bf16Rows& at) {
  if (at.m() != a.k() || at.k() != a.m()) fail("pack_with_transpose", "the transposed pack's shape is not A's transposed");
  pack_with_transpose(x, ld, a.m(), a.k(), {MR, a.wide_, a.stream_}, a.data_.get(), {MR, at.wide_, at.stream_}, at.data_.get());
}

void pack_with_transpose(const float* x, int64_t ld, Bf16Rows& a, Bf16Panels& bt) {
  if (bt.n() != a.k() || bt.k() != a.m()) fail("pack_with_transpose", "the transposed pack's shape is not A's transposed");
  pack_with_transpose(x, ld, a.m(), a.k(), {MR, a.wide_, a.stream_}, a.data_.get(), {NR, false, bt.stream_}, bt.data_.get());
}

void pack_transposed(const float* x, int64_t ld, Bf16Rows& at) {
  pack_with_transpose(x, ld, at.k(), at.m(), {MR, false}, nullptr, {MR, at.wide_, at.stream_}, at.data_.get());
}

void pack_with_transpose(const float* x, int64_t ld, Bf16Panels& b, Bf16Panels& bt) {
  if (bt.n() != b.k() || bt.k() != b.n()) fail("pack_with_transpose", "the transposed pack's shape is not B's transposed");
  pack_with_transpose(x, ld, b.n(), b.k(), {NR, false, b.stream_}, b.data_.get(), {NR, false, bt.stream_}, bt.data_.get());
}

int64_t pack_groups(const Bf16Panels& b) { return (b.n() + NR - 1) / NR * NR / 16; }

void pack_group_with_transpose(const float* x, int64_t ld, int64_t g, Bf16Panels& b, Bf16Panels& bt) {
  if (bt.n() != b.k() || bt.k() != b.n()) fail("pack_group_with_transpose", "the transposed pack's shape is not B's transposed");
  pack16_with_transpose(x, 0, ld, b.n(), g * 16, b.k(), {NR, false, b.stream_}, b.data_.get(), {NR, false, bt.stream_},
                        bt.data_.get());
}

namespace {

// The groups of 16 rows that cover `padded` rows of n matrices [M, K], shared out across threads:
// produce writes each group's rows of matrix i at out[i] (row stride K) in the thread's scratch,
// then pack(r0, out) packs them from there.
template <class Pack>
void for_produced_groups(int64_t M, int64_t padded, int64_t K, size_t n, const RowsProducer& produce, Pack pack) {
  parallel_for_balanced(size_t((padded + 15) / 16), 1, [&](size_t g0, size_t g1) {
    thread_local std::vector<float> scratch;  // 16 rows of each matrix: L1/L2-sized
    if (scratch.size() < n * 16 * size_t(K)) scratch.resize(n * 16 * size_t(K));
    std::vector<float*> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = scratch.data() + i * 16 * size_t(K);
    for (size_t g = g0; g < g1; ++g) {
      const int64_t r0 = int64_t(g) * 16, r1 = std::min(M, r0 + 16);
      if (r0 < r1) produce(r0, r1, out.data());
      pack(r0, out.data());
    }
  });
}

}  // namespace

void pack_produced(int64_t M, int64_t K, const RowsProducer& produce, const std::vector<PackTarget>& targets) {
  for (const PackTarget& t : targets)
    if (t.a->m() != M || t.a->k() != K || (t.at ? t.at->m() != K || t.at->k() != M : !t.bt || t.bt->n() != K || t.bt->k() != M))
      fail("pack_produced", "a pack's shape is not the produced matrix's");
  for_produced_groups(M, (M + MR - 1) / MR * MR, K, targets.size(), produce, [&](int64_t r0, float* const* out) {
    for (size_t i = 0; i < targets.size(); ++i) {
      const PackTarget& t = targets[i];
      pack16_with_transpose(out[i], r0, K, M, r0, K, {MR, t.a->wide_, t.a->stream_}, t.a->data_.get(),
                            t.at ? Panels{MR, t.at->wide_, t.at->stream_} : Panels{NR, false, t.bt->stream_},
                            t.at ? t.at->data_.get() : t.bt->data_.get());
    }
  });
  fence_streams();
}

void pack_produced(int64_t N, int64_t K, const RowsProducer& produce, Bf16Panels* b, Bf16Panels* bt) {
  if ((b && (b->n() != N || b->k() != K)) || (bt && (bt->n() != K || bt->k() != N)))
    fail("pack_produced", "a pack's shape is not the produced matrix's");
  for_produced_groups(N, (N + NR - 1) / NR * NR, K, 1, produce, [&](int64_t r0, float* const* out) {
    pack16_with_transpose(out[0], r0, K, N, r0, K, {NR, false, b && b->stream_}, b ? b->data_.get() : nullptr,
                          {NR, false, bt && bt->stream_}, bt ? bt->data_.get() : nullptr);
  });
  if ((b && b->stream_) || (bt && bt->stream_)) fence_streams();
}

void gemm_bf16(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, bool transpose_a, const float* b, int64_t ldb,
               bool transpose_b, float* c, int64_t ldc, bool accumulate) {
  gemm_bf16(M, a, lda, transpose_a, Bf16Panels(b, ldb, transpose_b, N, K), c, ldc, accumulate);
}

// An odd panel count gets one more: the last 16-row group writes two panels. Widened values take
// twice the room.
Bf16Rows::Bf16Rows(int64_t M, int64_t K, Bf16Write write)
    : m_(M), k_(K), wide_(bf16_multiply() == Bf16Multiply::kFma), stream_(write == Bf16Write::kStream),
      data_(bf16_data(size_t(((M + MR - 1) / MR + 1) / 2 * 2 * ((K + 1) / 2) * MR * 2 * (wide_ ? 2 : 1)))) {}

Bf16Rows::Bf16Rows(const float* a, int64_t lda, bool transpose_a, int64_t M, int64_t K) : Bf16Rows(M, K) {
  pack(a, lda, transpose_a, M, K, {MR, wide_}, data_.get());
}

void gemm_bf16(int64_t M, const float* a, int64_t lda, bool transpose_a, const Bf16Panels& b, float* c, int64_t ldc,
               bool accumulate, Bf16Write write) {
  gemm_bf16(Bf16Rows(a, lda, transpose_a, M, b.k()), b, c, ldc, accumulate, write);
}

Bf16PanelsView Bf16Panels::view(int64_t n0, int64_t n, int64_t k0, int64_t k) const {
  const int64_t stride = (k_ + 1) / 2 * NR * 2;
  return {data_.get() + n0 / NR * stride + k0 / 2 * NR * 2, n, k, stride};
}

namespace {

void gemm_packed(const Bf16Rows& a, const Bf16PanelsView& b, float* c, int64_t ldc, bool accumulate, Bf16Causal causal,
                 Bf16Write write);

}  // namespace

void gemm_bf16(const Bf16Rows& a, const Bf16Panels& b, float* c, int64_t ldc, bool accumulate, Bf16Write write) {
  gemm_packed(a, b.view(), c, ldc, accumulate, Bf16Causal{}, write);
}

void gemm_bf16(const Bf16Rows& a, const Bf16PanelsView& b, float* c, int64_t ldc, bool accumulate) {
  gemm_packed(a, b, c, ldc, accumulate, Bf16Causal{}, Bf16Write::kCached);
}

void gemm_bf16(const Bf16Rows& a, const Bf16PanelsView& b, float* c, int64_t ldc, bool accumulate, Bf16Causal causal) {
  gemm_packed(a, b, c, ldc, accumulate, causal, Bf16Write::kCached);
}

namespace {

void gemm_packed(const Bf16Rows& a, const Bf16PanelsView& b, float* c, int64_t ldc, bool accumulate, Bf16Causal causal,
                 Bf16Write write) {
  if (a.k() != b.k) fail("gemm_bf16", "A's K (" + std::to_string(a.k()) + ") differs from B's (" + std::to_string(b.k) + ")");
  const int64_t M = a.m(), N = b.n, pairs = (b.k + 1) / 2, mp = (M + MR - 1) / MR, np = (N + NR - 1) / NR;
  const int64_t a_stride = pairs * MR * 2, off = causal.offset;
  const bool a_outer = mp * MR > np * NR;  // the loop order, see below
  const bool stream = write == Bf16Write::kStream && ldc % 16 == 0;  // then C's rows all start as its first does
  auto tile = [&](int64_t p, int64_t q) {
    const int64_t rows = std::min(MR, M - p * MR), cols = std::min(NR, N - q * NR);
    float* ct = c + p * MR * ldc + q * NR;
    int64_t p0 = 0, p1 = pairs;  // the k-pairs this tile reads
    switch (causal.kind) {
      case Bf16Causal::kNone: break;
      case Bf16Causal::kColumns:
        if (q * NR > p * MR + rows - 1 + off) {  // every column past every row's last key
          if (!accumulate)
            for (int64_t i = 0; i < rows; ++i) std::fill(ct + i * ldc, ct + i * ldc + cols, 0.0f);
          return;
        }
        break;
      case Bf16Causal::kKUpTo: p1 = std::clamp<int64_t>((p * MR + rows - 1 + off) / 2 + 1, 0, pairs); break;
      case Bf16Causal::kKFrom: p0 = std::clamp<int64_t>((p * MR - off) / 2, 0, pairs); break;
    }
    if (p1 <= p0 && accumulate) return;  // without accumulation a tile with no pairs stores zeros
    const int64_t at = p * a_stride + p0 * MR * 2, n = std::max<int64_t>(p1 - p0, 0);  // A's first value, k-pairs
    const uint16_t* bt = b.data + q * b.panel_stride + p0 * NR * 2;
    const bool st = stream && !accumulate && rows == MR && cols == NR && reinterpret_cast<uintptr_t>(ct) % 64 == 0;
    if (!a.wide())
      return (st ? micro_kernel<true> : micro_kernel<false>)(a.data() + at, bt, n, ct, ldc, rows, cols, accumulate);
    const float* aw = reinterpret_cast<const float*>(a.data()) + at;
    // B streams past a fixed A panel when A is the outer operand (below): then the kernel prefetches it.
    if (a_outer) (st ? micro_kernel_fma<true, true> : micro_kernel_fma<true, false>)(aw, bt, n, ct, ldc, rows, cols, accumulate);
    else (st ? micro_kernel_fma<false, true> : micro_kernel_fma<false, false>)(aw, bt, n, ct, ldc, rows, cols, accumulate);
  };
  // Threads take disjoint C tiles split along the larger operand, which is also the outer loop: its
  // panel stays in L1 while the smaller operand streams from L2/L3. (B outer for lm_head's dW,
  // M = 32000: 290 -> 380 GFLOPS.) The work goes in pieces of a few tiles of one outer panel
  // (~2K k-pairs, ~10 us), shared out so that a thread that finishes early takes over the other's last
  // pieces: split by whole panels, the two threads ended ~50 us apart in a ~1.7 ms product (one
  // panel's row of tiles), ~3% of the bf16 training step's GEMM time spent waiting. Every tile is
  // computed the same way whichever thread takes it.
  const int64_t outer = a_outer ? mp : np, inner = a_outer ? np : mp;
  if (pairs > 4096) {
    // A long K (the lm_head's input gradient: 32000): no panel fits a cache level near the core,
    // and each inner one (512 KB at K = 32000) came from memory for every outer panel; taken for 4
    // outer panels at a time (their 8 MB stay in L3): 820-850 -> 910-930 GFLOPS in one hour's
    // microbenchmark (511 x 32000 x 512 and x 768), 860 -> 875 in another's (this host's memory
    // traffic varies). The same tiles, each computed as before.
    constexpr int64_t kGroup = 4;
    const int64_t groups = (outer + kGroup - 1) / kGroup;
    parallel_for_balanced(size_t(groups * inner), 1, [&](size_t i0, size_t i1) {
      for (size_t i = i0; i < i1; ++i) {
        const int64_t g = int64_t(i) / inner, j = int64_t(i) % inner;
        for (int64_t o = g * kGroup; o < std::min(outer, (g + 1) * kGroup); ++o) a_outer ? tile(o, j) : tile(j, o);
      }
    });
    if (stream) fence_streams();
    return;
  }
  const int64_t per_piece = std::clamp<int64_t>(2048 / std::max<int64_t>(pairs, 1), 1, inner);
  const int64_t pieces = (inner + per_piece - 1) / per_piece;
  parallel_for_balanced(size_t(outer * pieces), 1, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) {
      const int64_t o = int64_t(i) / pieces, j0 = int64_t(i) % pieces * per_piece, j1 = std::min(inner, j0 + per_piece);
      for (int64_t j = j0; j < j1; ++j) a_outer ? tile(o, j) : tile(j, o);
    }
  });
  if (stream) fence_streams();
}

}  // namespace

}  // namespace zephyr

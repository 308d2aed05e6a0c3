// C[M,N] (+)= A[M,K] · B[N,K]ᵀ with A and B rounded to bf16 and products accumulated in fp32 by
// AVX512-BF16 dot products (vdpbf16ps: 32 multiply-adds per instruction, on AMD's Zen 4 twice fp32
// FMA; on Intel, where it issues at half the FMA rate, by FMAs on the widened values: see
// Bf16Multiply) — the matmuls of `bf16: true` training, as PyTorch's bf16 autocast feeds its GEMMs.
// Hand-written because Debian's OpenBLAS is built without its SBGEMM.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace zephyr {

// How a pack or a product's C is written. kStream: by streaming (non-temporal) stores, which send
// whole cache lines to memory without first reading them in (a normal store reads its line before
// writing it): for results that are larger than the caches or are read back only after much other
// traffic has evicted them (a weight's packs made by the optimizer for the next step, the forward's
// packs kept for the backward pass, gradients, a row's logits). Results read right away stay
// kCached. Only whole, aligned lines stream (a product's full tiles that store over C); the rest
// is written as kCached writes it. Products and packs fence their streaming stores before they
// return (core/parallel.h: fence_streams), except pack_group_with_transpose: its caller fences once
// it has packed every group.
enum class Bf16Write { kCached, kStream };

// A pack's storage, 64-byte aligned so that its panels' lines can stream.
struct Bf16Free {
  void operator()(uint16_t* p) const;
};
using Bf16Data = std::unique_ptr<uint16_t[], Bf16Free>;

// True when this CPU has AVX512-BF16.
bool gemm_bf16_available();

// What multiplies the bf16 values: vdpbf16ps (AMD, where it runs at the fp32 FMA rate with half
// the instructions), or fp32 FMAs on the values widened to fp32 (Intel, where vdpbf16ps runs at
// half the FMA rate); the same products, each sum rounded as vdpbf16ps specifies. Chosen by the
// CPU's vendor; tests and benchmarks set it to run both.
enum class Bf16Multiply { kDotProduct, kFma };
Bf16Multiply bf16_multiply();
void set_bf16_multiply(Bf16Multiply m);

// lda/ldb/ldc are row strides in elements; transpose_a means A is given as [K, M] (element (m, k)
// at a[k * lda + m]), likewise transpose_b for B given as [K, N]. accumulate adds to C.
void gemm_bf16(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, bool transpose_a, const float* b, int64_t ldb,
               bool transpose_b, float* c, int64_t ldc, bool accumulate);

// Part of a packed B: what a product over a sub-range of B's rows or of K reads.
struct Bf16PanelsView {
  const uint16_t* data = nullptr;
  int64_t n = 0, k = 0, panel_stride = 0;  // panel_stride: elements from one 32-row panel to the next
};

// B packed once for many products: a weight that every row of a training batch multiplies.
class Bf16Panels {
 public:
  Bf16Panels() = default;
  Bf16Panels(const float* b, int64_t ldb, bool transpose_b, int64_t N, int64_t K);
  // Room for B [N, K], filled by pack_with_transpose or pack_produced as `write` says.
  Bf16Panels(int64_t N, int64_t K, Bf16Write write = Bf16Write::kCached);
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  const uint16_t* data() const { return data_.get(); }
  // Rows [n0, n0 + n) and k [k0, k0 + k) of B: n0 a multiple of 32, k0 even.
  Bf16PanelsView view(int64_t n0, int64_t n, int64_t k0, int64_t k) const;
  Bf16PanelsView view() const { return view(0, n_, 0, k_); }

 private:
  int64_t n_ = 0, k_ = 0;
  bool stream_ = false;
  Bf16Data data_;
  friend void pack_with_transpose(const float*, int64_t, class Bf16Rows&, Bf16Panels&);
  friend void pack_with_transpose(const float*, int64_t, Bf16Panels&, Bf16Panels&);
  friend void pack_group_with_transpose(const float*, int64_t, int64_t, Bf16Panels&, Bf16Panels&);
  friend void pack_produced(int64_t, int64_t, const std::function<void(int64_t, int64_t, float* const*)>&,
                            const std::vector<struct PackTarget>&);
  friend void pack_produced(int64_t, int64_t, const std::function<void(int64_t, int64_t, float* const*)>&, Bf16Panels*,
                            Bf16Panels*);
};

// A packed for the GEMM: once for several products that share it, or block by block by the
// code that produces A while those values are still in its cache.
class Bf16Rows {
 public:
  Bf16Rows() = default;
  // Room for A [M, K], filled by pack_with_transpose or pack_produced as `write` says.
  Bf16Rows(int64_t M, int64_t K, Bf16Write write = Bf16Write::kCached);
  // A [M, K] packed whole, across threads (transpose_a: given as [K, M]).
  Bf16Rows(const float* a, int64_t lda, bool transpose_a, int64_t M, int64_t K);
  int64_t m() const { return m_; }
  int64_t k() const { return k_; }
  // Values widened to fp32 for the FMA kernel (chosen by bf16_multiply() when made).
  bool wide() const { return wide_; }
  const uint16_t* data() const { return data_.get(); }

 private:
  int64_t m_ = 0, k_ = 0;
  bool wide_ = false, stream_ = false;
  Bf16Data data_;
  friend void pack_with_transpose(const float*, int64_t, Bf16Rows&, Bf16Rows&);
  friend void pack_with_transpose(const float*, int64_t, Bf16Rows&, Bf16Panels&);
  friend void pack_transposed(const float*, int64_t, Bf16Rows&);
  friend void pack_produced(int64_t, int64_t, const std::function<void(int64_t, int64_t, float* const*)>&,
                            const std::vector<struct PackTarget>&);
};

// x [M, K] (row-major, row stride ld) packed in one read as A [M, K] (`a`) and transposed, as the A
// of a product over M (`at`: [K, M]) or as its B (`bt`: N = K, K = M) — a layer's input as its
// forward product's A and its weight gradient's B, an output gradient as the A of both backward
// products. Each is made with room for its shape.
void pack_with_transpose(const float* x, int64_t ld, Bf16Rows& a, Bf16Rows& at);
void pack_with_transpose(const float* x, int64_t ld, Bf16Rows& a, Bf16Panels& bt);
// x [N, K] as B (`b`) and transposed as B (`bt`: N = K, K = N): a weight for its forward product and
// its input gradient's.
void pack_with_transpose(const float* x, int64_t ld, Bf16Panels& b, Bf16Panels& bt);
// x [M, K] packed transposed only (`at`: [K, M]), reading x's rows as pack_with_transpose does
// (Bf16Rows(x, ld, true, K, M) walks down x's columns, 16 at a time).
void pack_transposed(const float* x, int64_t ld, Bf16Rows& at);

// B [N, K] packed as pack_with_transpose(x, ld, b, bt) packs it, one group of 16 rows at a time
// ([16 g, 16 g + 16), rows past N packed as zeros): by code that changes a weight a group at a time
// (the optimizer) while the group is in cache. b and bt made with room for B and Bᵀ. Packs made
// kStream: the caller calls fence_streams() once, after the last group.
int64_t pack_groups(const Bf16Panels& b);
void pack_group_with_transpose(const float* x, int64_t ld, int64_t g, Bf16Panels& b, Bf16Panels& bt);

// Matrices [M, K] that code makes 16 rows at a time (an elementwise pass's outputs: SwiGLU's, the
// loss's logit gradients), each packed as
// pack_with_transpose packs a whole one — as A, and transposed as a product's A (`at`) or B (`bt`)
// — while its rows are in cache: made whole first, an MLP-sized one (511 x 1408 fp32, 2.9 MB) went
// out to memory and was read back for the packing. produce(r0, r1, out) writes rows [r0, r1) of
// matrix i at out[i] (row stride K) on the calling thread; groups of rows run across threads.
struct PackTarget {
  Bf16Rows* a;
  Bf16Rows* at = nullptr;  // one of at and bt
  Bf16Panels* bt = nullptr;
};
using RowsProducer = std::function<void(int64_t r0, int64_t r1, float* const* out)>;
void pack_produced(int64_t M, int64_t K, const RowsProducer& produce, const std::vector<PackTarget>& targets);
// The same for a B [N, K] made 16 rows at a time (a quantized weight's rows dequantized), packed as
// B (`b`) and/or transposed as B (`bt`: N = K, K = N); either may be null. Dequantized whole into
// fp32 first, a frozen weight's panel (~4 MB) went out to memory and was read back to be packed.
void pack_produced(int64_t N, int64_t K, const RowsProducer& produce, Bf16Panels* b, Bf16Panels* bt);

// The same product with B already packed (N and K from it), and with A packed too; C written as
// `write` says.
void gemm_bf16(int64_t M, const float* a, int64_t lda, bool transpose_a, const Bf16Panels& b, float* c, int64_t ldc,
               bool accumulate, Bf16Write write = Bf16Write::kCached);
void gemm_bf16(const Bf16Rows& a, const Bf16Panels& b, float* c, int64_t ldc, bool accumulate,
               Bf16Write write = Bf16Write::kCached);
void gemm_bf16(const Bf16Rows& a, const Bf16PanelsView& b, float* c, int64_t ldc, bool accumulate);

// Attention's causal triangle in a product of a block of queries and the keys it sees, `offset` =
// the block's first query minus its first key: the work whose result the mask makes zero is
// skipped. kColumns (scores, dP: C's rows queries, columns keys): C (m, n) is computed only where
// n <= m + offset, 8 x 32 tiles at a time (skipped tiles hold zeros, or are left as they were
// when accumulating). kKUpTo (P·V, dS·K: A's rows queries, k keys): row m reads k <= m + offset
// only, A being zero past it. kKFrom (Pᵀ·dO, dSᵀ·Q: A's rows keys, k queries): row m reads k >=
// m - offset only. Per 8-row tile, in pairs of k; the k skipped only ever added products of zero.
struct Bf16Causal {
  enum Kind { kNone, kColumns, kKUpTo, kKFrom } kind = kNone;
  int64_t offset = 0;
};
void gemm_bf16(const Bf16Rows& a, const Bf16PanelsView& b, float* c, int64_t ldc, bool accumulate, Bf16Causal causal);

}  // namespace zephyr

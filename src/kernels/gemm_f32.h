// C[M,N] (+)= A[M,K] · B[N,K]ᵀ in fp32 by AVX-512 FMAs (B packed, A packed or read in place):
// fp32 training's products. Hand-written for one property BLAS does not promise: every element is
// one chain of FMAs over k in order from zero, whatever M and N are, so a row of C depends only on
// its row of A (OpenBLAS's SGEMM gives a row other last bits in a product over more rows, as its
// kernels choose their path by the product's size). A batch's rows then go through each layer as
// one product while each row's log-probs stay those it has alone.
#pragma once
#include <cstdint>

#include "core/buffer.h"

namespace zephyr {

// True when this CPU has AVX-512 F (else callers take BLAS) and tests have not turned it off
// (set_gemm_f32_enabled(false): to run the BLAS fallback of CPUs without it).
bool gemm_f32_available();
void set_gemm_f32_enabled(bool enabled);

// lda/ldb/ldc: row strides in elements; transpose_a: A given as [K, M] (element (m, k) at
// a[k * lda + m]), likewise transpose_b for B given as [K, N]. accumulate adds to C (else C is
// written, not read).
void gemm_f32(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, bool transpose_a, const float* b, int64_t ldb,
              bool transpose_b, float* c, int64_t ldc, bool accumulate);

// Part of a packed B: what a product over a sub-range of B's rows or of K reads.
struct F32PanelsView {
  const float* data = nullptr;
  int64_t n = 0, k = 0, panel_stride = 0;  // panel_stride: elements from one 32-row panel to the next
};

// B [N, K] packed once for many products (attention's keys and values, which every query block of
// every head in their group reads): panels of 32 rows, k-major.
class F32Panels {
 public:
  F32Panels(const float* b, int64_t ldb, bool transpose_b, int64_t N, int64_t K);
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  // Rows [n0, n0 + n) and k [k0, k0 + k) of B: n0 a multiple of 32.
  F32PanelsView view(int64_t n0, int64_t n, int64_t k0, int64_t k) const;

 private:
  int64_t n_ = 0, k_ = 0;
  Buffer data_;
};

// The same product with B packed (N and K from it): each element the same FMA chain as above.
void gemm_f32(int64_t M, const float* a, int64_t lda, bool transpose_a, const F32PanelsView& b, float* c, int64_t ldc,
              bool accumulate);

}  // namespace zephyr

// C[M,N] (+)= A[M,K] · B[N,K]ᵀ in fp32 by AVX-512 FMAs on packed operands — fp32 training's
// forward products. Hand-written for one property BLAS does not promise: every element is one
// chain of FMAs over k in order from zero, whatever M and N are, so a row of C depends only on its
// row of A (OpenBLAS's SGEMM gives a row other last bits in a product over more rows, as its
// kernels choose their path by the product's size). A batch's rows then go through each layer as
// one product while each row's log-probs stay those it has alone.
#pragma once
#include <cstdint>

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

}  // namespace zephyr

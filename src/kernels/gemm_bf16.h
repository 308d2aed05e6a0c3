// C[M,N] (+)= A[M,K] · B[N,K]ᵀ with A and B rounded to bf16 and products accumulated in fp32 by
// AVX512-BF16 dot products (vdpbf16ps: 32 multiply-adds per instruction, twice fp32 FMA) — the
// matmuls of `bf16: true` training, as PyTorch's bf16 autocast feeds its GEMMs. Hand-written because
// Debian's OpenBLAS is built without its SBGEMM.
#pragma once
#include <cstdint>
#include <memory>

namespace zephyr {

// True when this CPU has AVX512-BF16.
bool gemm_bf16_available();

// lda/ldb/ldc are row strides in elements; transpose_a means A is given as [K, M] (element (m, k)
// at a[k * lda + m]), likewise transpose_b for B given as [K, N]. accumulate adds to C.
void gemm_bf16(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, bool transpose_a, const float* b, int64_t ldb,
               bool transpose_b, float* c, int64_t ldc, bool accumulate);

// B packed once for many products: a weight that every row of a training batch multiplies.
class Bf16Panels {
 public:
  Bf16Panels() = default;
  Bf16Panels(const float* b, int64_t ldb, bool transpose_b, int64_t N, int64_t K);
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  const uint16_t* data() const { return data_.get(); }

 private:
  int64_t n_ = 0, k_ = 0;
  std::unique_ptr<uint16_t[]> data_;
};

// The same product with B already packed (N and K from it).
void gemm_bf16(int64_t M, const float* a, int64_t lda, bool transpose_a, const Bf16Panels& b, float* c, int64_t ldc,
               bool accumulate);

}  // namespace zephyr

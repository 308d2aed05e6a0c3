// Linear layers: y = x · Wᵀ with W stored [out, in] as HF's nn.Linear keeps it, in F32, BF16 or
// F16, accumulated in fp32. Every linear layer of the model goes through matmul(), so adapters
// (LoRA) and other backends have one place to hook in.
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace zephyr {

class Bf16Rows;  // kernels/gemm_bf16.h

// A row-major [rows, cols] weight matrix, not owned (usually mmapped from safetensors).
struct Matrix {
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;

  size_t nbytes() const { return size_t(rows) * row_bytes(dtype, cols); }
};

// Projections of the same input stacked by rows (q|k|v, gate|up): one matrix when they share a
// dtype, else parts whose outputs sit side by side (a Q4_K_M file mixes Q4_K and Q6_K).
struct StackedMatrix {
  std::vector<Matrix> parts;
  int64_t rows = 0;
  size_t nbytes() const;
};

// y[n, w.rows] = x[n, w.cols] · wᵀ, row i of y at y + i * ldy (ldy 0: w.rows). Few rows (decode)
// take a streaming GEMV that reads W once at memory speed; more rows (prefill) take BLAS SGEMM on
// W converted to fp32 panel by panel; block-quantized W takes the int8 kernels of kernels/quant/.
void matmul(const float* x, int64_t n, const Matrix& w, float* y, int64_t ldy = 0);
void matmul(const float* x, int64_t n, const StackedMatrix& w, float* y);

// The same product with every row of y computed exactly as matmul(x_row, 1, ...) computes it,
// whatever n is: the batched engine's rows are then bit-identical whatever shares their step.
// Weights stream once per block of rows for all n tokens (the block stays in cache), so this
// costs little at decode sizes; prompts give up the GEMM paths' speed for the invariance.
void matmul_rowwise(const float* x, int64_t n, const Matrix& w, float* y, int64_t ldy = 0);
void matmul_rowwise(const float* x, int64_t n, const StackedMatrix& w, float* y);

// The backward of matmul for fp32 weights: dx += dy · w (dx = dy · w with dx_fresh: its old values,
// uninitialised ones too, are not read) and dw += dyᵀ · x (each when not null, a frozen weight has
// no dw), with dy [n, w.rows] taken times alpha; both through BLAS SGEMM.
void matmul_backward(const float* x, int64_t n, const Matrix& w, const float* dy, float* dx, float* dw, float alpha = 1.0f,
                     bool dx_fresh = false);

// Training through frozen low-precision weights (QLoRA): y = x · Wᵀ and dx += dy · W (dx = dy · W
// with dx_fresh) with W of any stored type dequantized for a GEMM (the bf16 one where `bf16`, packed
// 16 rows at a time as they are dequantized; else fp32 panels through gemm_f32, or SGEMM without
// AVX-512: the GEMMs of fp32 weights in training) — the activations stay in float, so training sees
// exactly the dequantized weights (the inference kernels' int8 activations would not).
// xa: x packed by the caller for the bf16 GEMM (shared by the layers that read x); else packed here.
void matmul_frozen(const float* x, int64_t n, const Matrix& w, float* y, bool bf16, const Bf16Rows* xa = nullptr);
void matmul_frozen_backward(const float* dy, int64_t n, const Matrix& w, float* dx, bool bf16, bool dx_fresh = false);

// y = alpha · x · Wᵀ (added to y with accumulate) with a thin fp32 matrix (a LoRA adapter's A [r,
// in] or B [out, r]) as one GEMM for any n (matmul takes row-at-a-time GEMVs below 4 rows). Its
// backward is matmul_backward.
void thin_matmul(const float* x, int64_t n, const Matrix& w, float* y, float alpha = 1.0f, bool accumulate = false);

// Row `row` of w converted to fp32 (embedding lookup).
void matrix_row(const Matrix& w, int64_t row, float* out);

// y[r] = dot(w[r], x) for rows [r0, r1) — the GEMV kernel, exposed for tests and benchmarks.
void gemv_rows(const float* x, const Matrix& w, int64_t r0, int64_t r1, float* y);

// Which GEMV implementation this CPU runs: "avx512" or "generic".
const char* gemv_isa();

}  // namespace zephyr

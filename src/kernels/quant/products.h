// Products of block-quantized weights (plain or interleaved rows) with int8-quantized
// activations, and the rows' dequantization for the prefill GEMM's panels: each runs the kernels
// of the best instruction set the CPU has — AVX-512 VNNI (avx512_vnni.cpp, interleaved_vnni.cpp),
// AVX2 (avx2.cpp) — or the scalar reference.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "kernels/quant/activations.h"

namespace zephyr {

// y[r] = dot(w row r, x) for rows [r0, r1) of a [rows, n] block-quantized matrix.
void quant_gemv_rows(DType t, const void* w, int64_t rows, int64_t n, const QuantizedActivations& x, int64_t r0, int64_t r1,
                     float* y);
// y[t * ldy + r] for ntok tokens, each bit-identical to quant_gemv_rows for that token alone
// (the batched engine), with tokens sharing each row's unpacking where the kernels allow.
void quant_gemv_rows_tokens(DType t, const void* w, int64_t rows, const QuantizedActivations* x, int64_t ntok, int64_t r0,
                            int64_t r1, float* y, int64_t ldy);
// y[t * ldy + r] = dot(w row r, x[t]) for ntok tokens and rows [r0, r1) (prefill).
void quant_gemm_rows(DType t, const void* w, int64_t rows, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1,
                     float* y, int64_t ldy);
// The same dot product by the scalar reference (double accumulation), for tests.
double quant_dot_reference(DType t, const void* row, const QuantizedActivations& x);

// Rows [r0, r1) of a block-quantized (or interleaved) [rows, cols] matrix to fp32, vectorised
// with AVX-512 or AVX2 (bit-identical to dequantize_row): the prefill GEMM's panels.
void dequantize_rows(DType t, const void* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1, float* out);

// Which kernels run: "avx512-vnni", "avx2" or "scalar". quant_force_isa ("", "avx2" or "scalar")
// lets tests run the slower paths on a machine that has the faster one.
const char* quant_isa();
void quant_force_isa(const char* isa);

}  // namespace zephyr

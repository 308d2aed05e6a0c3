// The interleaved layouts: rows in groups of 8, and per group and column (4 blocks of Q4_0, 2 of
// Q4_1, one of Q8_0, one super-block of Q4_K / Q6_K) the 8 rows' scales followed by their quants,
// 16 bytes per row at a time (the offsets are in interleaved_layout.h). Vector loads then bring 8
// rows' scales, the integer multiply-adds work on 4 rows per instruction against broadcast
// activations (Q4_1: 8 rows × 2 blocks, a lane per row and block), and (but for Q8_0) each 4-byte
// lane belongs to another (sub-)block, so a whole chain of multiply-adds shares one scale vector —
// several times fewer instructions per weight than a row at a time. Rows longer than 2048 elements
// are stored in column chunks of 2048, one after the other, each holding its columns of every
// group, so the activations a chunk needs stay in L1 while the rows stream. Used where the CPU has
// AVX-512 VNNI, for prefill and decode (interleaved_vnni.cpp); same bytes in total.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace zephyr {

// Q4_0 → Q4_0x8, Q8_0 → Q8_0x8, Q4_1 → Q4_1x8, Q4_K → Q4_Kx8, Q6_K → Q6_Kx8 where the CPU has
// AVX-512 VNNI (rows a multiple of 8, cols of a column's elements: 128, 32, 64, 256, 256), else
// the type itself.
DType interleaved_type(DType t, int64_t rows, int64_t cols);
void interleave_rows(DType t, const uint8_t* src, uint8_t* dst, int64_t rows, int64_t cols);
// Groups [g0, g1) only: src holds their 8·(g1 − g0) plain rows, dst is the whole matrix.
void interleave_groups(DType t, const uint8_t* src, uint8_t* dst, int64_t rows, int64_t cols, int64_t g0, int64_t g1);
// Row `row` of an interleaved [rows, cols] matrix (whose data starts at base) to fp32.
void dequantize_interleaved_row(DType t, const void* base, int64_t rows, int64_t row, int64_t cols, float* out);

}  // namespace zephyr

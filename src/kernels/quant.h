// GGUF's block-quantized weight types (the layouts ggml defines; facts of the file format):
//   Q8_0  32 elements: f16 d, int8 q[32]                      x = d·q
//   Q4_0  32 elements: f16 d, 16 bytes of nibbles             x = d·(q − 8)
//   Q4_1  32 elements: f16 d, f16 m, 16 bytes of nibbles      x = d·q + m
//         (byte j holds element j in its low nibble and element j + 16 in its high one)
//   Q4_K 256 elements: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32,
//         128 bytes of nibbles (each 32-byte run holds sub-block 2i low, 2i + 1 high)
//                                                              x = d·sc·q − dmin·m
//   Q6_K 256 elements: 128 bytes low nibbles, 64 bytes of 2-bit highs, int8 scales per 16, f16 d
//                                                              x = d·sc·(q − 32)
// Dot products quantize the activations to int8 in blocks of 32 (fp32 scale each) and run
// integer multiply-adds: AVX-512 VNNI or AVX2 where the CPU has them, otherwise the scalar
// reference. Every weight type is computed as x = s·u + m with u an unsigned integer, so one
// integer kernel serves all of them (see quant.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace zephyr {

struct BlockQ8_0 { uint16_t d; int8_t q[32]; };
struct BlockQ4_0 { uint16_t d; uint8_t q[16]; };
struct BlockQ4_1 { uint16_t d, m; uint8_t q[16]; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t q[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ6_K) == 210);

// Row of n elements (a multiple of the block) of any stored type, float types included, to fp32.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// fp32 to a block type, rounding as ggml's reference quantizers do (Q8_0, Q4_0, Q4_1 bit-exact;
// Q4_K and Q6_K by a search for the scale with the least squared error).
void quantize_row(DType t, const float* src, void* dst, int64_t n);
// Which block types quantize_row can write.
bool can_quantize(DType t);

// Activations quantized for the integer dot products: per 32 elements a scale d with
// x ≈ d·q (q in −127..127), and per group of 4 elements ("lane") d, d·Σq and −k·Σq for the
// offsets k = 8, 32, 128 of Q4_0, Q6_K and Q8_0 (the integer kernels start from these, so
// Σ(u − k)·q comes out of the multiply-add itself).
struct QuantizedActivations {
  int64_t n = 0;
  std::vector<int8_t> q;      // n
  std::vector<float> lane_d;  // n / 4
  std::vector<float> lane_s;  // n / 4: d · (sum of the lane's 4 q)
  std::vector<int32_t> lane_off[3];  // n / 4 each: −8·Σq, −32·Σq, −128·Σq
  // For Q4_K's offsets, once per 256 elements: 8 zeros, then d·Σq of the 8 sub-blocks (n / 16;
  // empty unless n is a multiple of 256).
  std::vector<float> k_sums;
  // For the 4-bit kernels, which sum a block's elements 4j..4j+3 together with 16+4j..16+4j+3
  // (byte j of Q4_0/Q4_1 holds elements j and j + 16): per block and j, −8·Σq of those 8 values.
  std::vector<int32_t> q4_lane_off;  // n / 8
  // Q4_0/Q4_1 rows not interleaved: the activations in nibble order, per 128 elements (4 blocks)
  // the low halves of the four blocks, then their high halves, with lane L of a group covering
  // block L/4 as above. Empty unless n is a multiple of 128.
  std::vector<int8_t> q4;
  std::vector<float> q4_lane_d, q4_lane_s;  // n / 8
  // For Q4_1x8 (empty unless n is a multiple of 64): per 2 blocks and step s (0..7) 8 bytes, q of
  // elements 4s..4s+3 of the first block, then of the second.
  std::vector<int8_t> pairs;
  // Per block of 32 its scale d, and (for Q4_1x8's offsets) d·Σq.
  std::vector<float> block_d;  // n / 32
  std::vector<float> block_s;  // n / 32
  // For the interleaved kernels (empty unless n is a multiple of 128): q re-ordered so that a
  // 16-byte group holds 4 elements of each of 4 consecutive (sub-)blocks (lane i of the group
  // from block i), the order of those layouts' weights —
  //   k32: per 128 elements, group v (0..7) = q[32i + 4v .. 32i + 4v + 3] for i = 0..3 (Q4_0, Q4_K);
  //   k16: per 64 elements, group v (0..3) = q[16i + 4v .. 16i + 4v + 3] for i = 0..3 (Q6_K);
  // and per block of 32 −8·Σq (off32), per 16 elements d (d16) and −32·Σq (off16).
  std::vector<int8_t> k32, k16;
  std::vector<int32_t> off32;  // n / 32
  std::vector<float> d16;      // n / 16
  std::vector<int32_t> off16;  // n / 16
};
// Fills `out` for weights of type `weights`: for an interleaved type only the order its kernel
// reads (with q and block_d; the other fields left empty), for any other type every field.
void quantize_activations(const float* x, int64_t n, QuantizedActivations& out, DType weights = DType::F32);

// y[r] = dot(w row r, x) for rows [r0, r1) of a [rows, n] block-quantized matrix.
void quant_gemv_rows(DType t, const void* w, int64_t rows, int64_t n, const QuantizedActivations& x, int64_t r0, int64_t r1,
                     float* y);
// The interleaved layouts: rows in groups of 8, and per group and column (4 blocks of Q4_0, 2 of
// Q4_1, one of Q8_0, one super-block of Q4_K / Q6_K) the 8 rows' scales followed by their quants,
// 16 bytes per row at a time (the offsets are in quant.cpp). Vector loads then bring 8 rows'
// scales, the integer multiply-adds work on 4 rows per instruction against broadcast activations
// (Q4_1: 8 rows × 2 blocks, a lane per row and block), and (but for Q8_0) each 4-byte lane belongs
// to another (sub-)block, so a whole chain of multiply-adds shares one scale vector — several times
// fewer instructions per weight than a row at a time. Rows longer than 2048 elements are stored in
// column chunks of 2048, one after the other, each holding its columns of every group, so the
// activations a chunk needs stay in L1 while the rows stream. Used where the CPU has AVX-512 VNNI,
// for prefill and decode; same bytes in total.
// interleaved_type: Q4_0 → Q4_0x8, Q8_0 → Q8_0x8, Q4_1 → Q4_1x8, Q4_K → Q4_Kx8, Q6_K → Q6_Kx8
// (rows a multiple of 8, cols of a column's elements: 128, 32, 64, 256, 256), else the type itself.
DType interleaved_type(DType t, int64_t rows, int64_t cols);
void interleave_rows(DType t, const uint8_t* src, uint8_t* dst, int64_t rows, int64_t cols);
// Groups [g0, g1) only: src holds their 8·(g1 − g0) plain rows, dst is the whole matrix.
void interleave_groups(DType t, const uint8_t* src, uint8_t* dst, int64_t rows, int64_t cols, int64_t g0, int64_t g1);
// Row `row` of an interleaved [rows, cols] matrix (whose data starts at base) to fp32.
void dequantize_interleaved_row(DType t, const void* base, int64_t rows, int64_t row, int64_t cols, float* out);

// Rows [r0, r1) of a block-quantized (or interleaved) [rows, cols] matrix to fp32, vectorised
// with AVX-512 or AVX2 (bit-identical to dequantize_row): the prefill GEMM's panels.
void dequantize_rows(DType t, const void* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1, float* out);

// y[t * ldy + r] for ntok tokens, each bit-identical to quant_gemv_rows for that token alone
// (the batched engine), with tokens sharing each row's unpacking where the kernels allow.
void quant_gemv_rows_tokens(DType t, const void* w, int64_t rows, const QuantizedActivations* x, int64_t ntok, int64_t r0,
                            int64_t r1, float* y, int64_t ldy);
// y[t * ldy + r] = dot(w row r, x[t]) for ntok tokens and rows [r0, r1) (prefill).
void quant_gemm_rows(DType t, const void* w, int64_t rows, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1,
                     float* y, int64_t ldy);
// The same dot product by the scalar reference (double accumulation), for tests.
double quant_dot_reference(DType t, const void* row, const QuantizedActivations& x);
// Which kernel runs: "avx512-vnni", "avx2" or "scalar". force_isa ("", "avx2" or "scalar")
// lets tests run the slower paths on a machine that has the faster one.
const char* quant_isa();
void quant_force_isa(const char* isa);

}  // namespace zephyr

// The activations' side of the integer dot products: fp32 vectors quantized to int8 in blocks of
// 32, with the sums and orders each weight type's kernel reads.
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace zephyr {

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

}  // namespace zephyr

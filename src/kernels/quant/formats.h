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
// Here in scalar code: reading and writing whole rows, and the blocks' packed fields. The
// vectorised kernels of this folder are tested against dequantize_row.
#pragma once
#include <cstdint>

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

// The packed fields of the K-quant blocks.
// A Q4_K block's 256 unsigned 4-bit values in element order, and back into its nibbles.
void q4k_values(const BlockQ4_K& b, uint8_t* u);
void q4k_store_values(const uint8_t* u, BlockQ4_K& b);
// The unsigned 6-bit value of element i (0..255) of a Q6_K block, and all 256 back into ql, qh.
inline int q6k_value(const BlockQ6_K& b, int i) {
  const int n = i / 128, r = i % 128, l = r % 32, part = r / 32;  // part 0..3 of a 128-chunk
  const uint8_t lo = b.ql[64 * n + l + (part & 1) * 32];
  const int low = part < 2 ? (lo & 0xF) : (lo >> 4);
  const int high = (b.qh[32 * n + l] >> (2 * part)) & 3;
  return low | (high << 4);
}
void q6k_store_values(const uint8_t* u, BlockQ6_K& b);

}  // namespace zephyr

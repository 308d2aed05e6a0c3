// Element types of stored tensors and the exact conversions between them. Besides the float
// types there are GGUF's block-quantized types: a row is a sequence of blocks, each holding a
// fixed number of elements with their scales (layouts in kernels/quant/formats.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace zephyr {

// Q4_0x8 / Q8_0x8 / Q4_1x8 / Q4_Kx8 / Q6_Kx8: Q4_0 / Q8_0 / Q4_1 / Q4_K / Q6_K matrices re-laid
// out in memory with 8 rows interleaved (see kernels/quant/interleave.h); never stored in files.
enum class DType { F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K, Q4_0x8, Q8_0x8, Q4_Kx8, Q6_Kx8, Q4_1x8 };

inline bool is_quantized(DType t) { return t != DType::F32 && t != DType::F16 && t != DType::BF16; }
inline bool is_interleaved(DType t) {
  return t == DType::Q4_0x8 || t == DType::Q8_0x8 || t == DType::Q4_1x8 || t == DType::Q4_Kx8 || t == DType::Q6_Kx8;
}
// Elements per block and bytes per block (a float type is a block of one element).
inline int64_t block_elements(DType t) {
  return t == DType::Q4_K || t == DType::Q6_K || t == DType::Q4_Kx8 || t == DType::Q6_Kx8 ? 256 : is_quantized(t) ? 32 : 1;
}
inline size_t block_bytes(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::Q8_0: case DType::Q8_0x8: return 34;
    case DType::Q4_0: case DType::Q4_0x8: return 18;
    case DType::Q4_1: case DType::Q4_1x8: return 20;
    case DType::Q4_K: case DType::Q4_Kx8: return 144;
    case DType::Q6_K: case DType::Q6_Kx8: return 210;
  }
  return 0;
}
// Bytes of a row of n elements (n a multiple of block_elements(t)).
inline size_t row_bytes(DType t, int64_t n) { return size_t(n / block_elements(t)) * block_bytes(t); }
// Bytes per element of a float type.
inline size_t dtype_size(DType t) { return block_bytes(t); }
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::Q8_0: return "Q8_0";
    case DType::Q4_0: return "Q4_0";
    case DType::Q4_1: return "Q4_1";
    case DType::Q4_K: return "Q4_K";
    case DType::Q6_K: return "Q6_K";
    case DType::Q4_0x8: return "Q4_0";
    case DType::Q8_0x8: return "Q8_0";
    case DType::Q4_1x8: return "Q4_1";
    case DType::Q4_Kx8: return "Q4_K";
    case DType::Q6_Kx8: return "Q6_K";
  }
  return "?";
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as PyTorch's .to(torch.bfloat16) does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of a float type at src to f32 (block types: dequantize_row in kernels/quant/formats.h).
void to_f32(DType from, const void* src, float* dst, size_t n);

}  // namespace zephyr

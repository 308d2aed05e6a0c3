#include "core/dtype.h"

#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "core/cpu_isa.h"
#include "core/error.h"

namespace zephyr {

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: value = mant * 2^-24
    float v = std::ldexp(float(mant), -24);
    std::memcpy(&bits, &v, 4);
    bits |= sign;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00;      // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00;     // rounds to or beyond infinity
  if (abs < 0x38800000u) {                          // subnormal or zero in f16
    float a;
    std::memcpy(&a, &abs, 4);
    return sign | uint16_t(std::nearbyint(a * 16777216.0f));  // 2^24; default mode rounds to even
  }
  uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u) - (112u << 23);
  return sign | uint16_t(r >> 13);
}

namespace {

// F16C (every AVX2 CPU has it) widens 8 halves per instruction, exactly as the scalar conversion
// above does.
bool has_f16c() { return cpu_isa() >= CpuIsa::kAvx2; }

// Value i of 16-bit data that need not be 2-byte aligned (a GGUF with general.alignment 1 may
// place an F16 tensor at an odd offset): one unaligned load on x86, without the undefined
// behaviour of dereferencing a misaligned uint16_t*.
inline uint16_t load16(const uint8_t* p, size_t i) {
  uint16_t v;
  std::memcpy(&v, p + 2 * i, 2);
  return v;
}

__attribute__((target("avx,f16c"))) void f16_to_f32_f16c(const uint8_t* h, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 2 * i))));
  for (; i < n; ++i) dst[i] = f16_to_f32(load16(h, i));
}

}  // namespace

void to_f32(DType from, const void* src, float* dst, size_t n) {
  const auto* h = static_cast<const uint8_t*>(src);
  switch (from) {
    case DType::F32: std::memcpy(dst, src, n * 4); break;
    case DType::BF16: for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load16(h, i)); break;
    case DType::F16:
      if (has_f16c()) f16_to_f32_f16c(h, dst, n);
      else for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(load16(h, i));
      break;
    default: fail(dtype_name(from), "is a block type; kernels/quant/formats.h dequantizes it");
  }
}

}  // namespace zephyr

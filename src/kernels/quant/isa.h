// Inside kernels/quant/: the instruction sets the integer products run on, what each set's kernels
// offer the dispatcher (products.cpp), and the block unpacking they share.
//
// Every weight type is read as x = s·u + m per group with u unsigned; with activations a = d·q, a
// group's dot product is s·d·Σ(u·q) + m·d·Σq. The kernels produce Σ(u·q) per lane of 4 elements
// (what vpdpbusd / pmaddubsw+pmaddwd leave in each int32), so with the lane's d and d·Σq
// precomputed (activations.h) the whole row is acc += s·(Σuq·d) + m·(d·Σq) lane by lane.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/quant/activations.h"
#include "kernels/quant/formats.h"

#define Z_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))
#define Z_AVX2 __attribute__((target("avx2,f16c,fma")))

namespace zephyr::quant {

enum class Isa { Scalar, Avx2, Vnni };
// cpu_isa()'s: AVX-512 VNNI, else AVX2 with FMA and F16C, else the scalar reference.
Isa best_isa();
// The one the products run on: best_isa(), unless a test chose a slower one (quant_force_isa).
Isa active_isa();

// f(std::integral_constant<DType, T>) for a plain block type T; false for any other type.
template <class F>
bool with_block_type(DType t, F&& f) {
  switch (t) {
    case DType::Q8_0: f(std::integral_constant<DType, DType::Q8_0>{}); return true;
    case DType::Q4_0: f(std::integral_constant<DType, DType::Q4_0>{}); return true;
    case DType::Q4_1: f(std::integral_constant<DType, DType::Q4_1>{}); return true;
    case DType::Q4_K: f(std::integral_constant<DType, DType::Q4_K>{}); return true;
    case DType::Q6_K: f(std::integral_constant<DType, DType::Q6_K>{}); return true;
    default: return false;
  }
}

// Types whose offset m is a fixed multiple of the scale (x = s·(u − k)): the index of k in
// QuantizedActivations::lane_off, else −1.
template <DType T>
constexpr int offset_index() {
  return T == DType::Q4_0 ? 0 : T == DType::Q6_K ? 1 : T == DType::Q8_0 ? 2 : -1;
}

// A Q4_K block's 8 sub-block scales and 8 mins as 16 bytes, the 6-bit fields unpacked four at a
// time in 32-bit words (bytes 0-3 / 4-7 hold the low 6 bits of scales / mins 0-3 and the top 2
// bits of 4-7, bytes 8-11 the low nibbles of scales and mins 4-7).
inline __m128i q4k_scale_bytes(const BlockQ4_K& b) {
  uint32_t d, m, md;
  std::memcpy(&d, b.scales, 4);
  std::memcpy(&m, b.scales + 4, 4);
  std::memcpy(&md, b.scales + 8, 4);
  const uint32_t sc_lo = d & 0x3F3F3F3Fu, sc_hi = (md & 0x0F0F0F0Fu) | ((d >> 2) & 0x30303030u);
  const uint32_t mn_lo = m & 0x3F3F3F3Fu, mn_hi = ((md >> 4) & 0x0F0F0F0Fu) | ((m >> 2) & 0x30303030u);
  return _mm_setr_epi32(int(sc_lo), int(sc_hi), int(mn_lo), int(mn_hi));
}

// Plain rows of block type t, `stride` bytes apart: y[r] for rows [r0, r1) against one token, or
// y[t * ldy + r] against ntok tokens — each token's results bit-identical to a call for it alone
// (gemv_tokens: the batched engine's invariance; gemm: prefill, its own summation order).
// avx512_vnni.cpp: rows of a multiple of 64 elements.
void gemv_vnni(DType t, const uint8_t* w, size_t stride, const QuantizedActivations& x, int64_t r0, int64_t r1, float* y);
void gemv_tokens_vnni(DType t, const uint8_t* w, size_t stride, const QuantizedActivations* x, int64_t ntok, int64_t r0,
                      int64_t r1, float* y, int64_t ldy);
void gemm_vnni(DType t, const uint8_t* w, size_t stride, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1,
               float* y, int64_t ldy);
// avx2.cpp: rows of a multiple of 32 elements.
void gemv_avx2(DType t, const uint8_t* w, size_t stride, const QuantizedActivations& x, int64_t r0, int64_t r1, float* y);
void gemm_avx2(DType t, const uint8_t* w, size_t stride, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1,
               float* y, int64_t ldy);
// interleaved_vnni.cpp: whole groups of 8 rows of an interleaved [rows, x.n] matrix (any token
// count: its kernels give each token the same bits).
void gemm_interleaved(DType t, const uint8_t* w, int64_t rows, const QuantizedActivations* x, int64_t ntok, int64_t r0,
                      int64_t r1, float* y, int64_t ldy);

// Rows [r0, r1) to fp32, `cols` apart in out, bit-identical to dequantize_row: AVX-512 (any
// stored type, interleaved ones included) and AVX2 (plain rows, `stride` bytes apart).
void dequantize_rows_vnni(DType t, const uint8_t* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1, float* out);
void dequantize_rows_avx2(DType t, const uint8_t* w, size_t stride, int64_t cols, int64_t r0, int64_t r1, float* out);

}  // namespace zephyr::quant

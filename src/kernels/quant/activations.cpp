#include "kernels/quant/activations.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "kernels/quant/isa.h"

namespace zephyr {

namespace {

// Activations to int8 per block of 32: d = max|x| / 127, q = round-half-even(x / d). The vector
// version gives the same bits (same product, same rounding); the scalar loop's rounding is a libm
// call (quantize_activations of 4096 values: 14 us with it, 3 us with the vector version).
void quantize_blocks_scalar(const float* x, int64_t n, int8_t* q, float* d) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* v = x + 32 * b;
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[i]));
    d[b] = amax / 127.0f;
    const float id = d[b] != 0 ? 1.0f / d[b] : 0.0f;
    for (int i = 0; i < 32; ++i) q[32 * b + i] = int8_t(std::nearbyint(v[i] * id));
  }
}

Z_AVX2 void quantize_blocks_avx2(const float* x, int64_t n, int8_t* q, float* d) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* v = x + 32 * b;
    __m256 r[4], m = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) r[k] = _mm256_loadu_ps(v + 8 * k), m = _mm256_max_ps(m, _mm256_and_ps(r[k], abs_mask));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    d[b] = _mm_cvtss_f32(h) / 127.0f;
    const __m256 id = _mm256_set1_ps(d[b] != 0 ? 1.0f / d[b] : 0.0f);
    __m256i i[4];
    for (int k = 0; k < 4; ++k) i[k] = _mm256_cvtps_epi32(_mm256_mul_ps(r[k], id));  // current rounding mode: half-even
    // int32 → int16 → int8 with saturation (values are within ±127); packs interleave the
    // 128-bit halves, the permute puts them back in order.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32 * b), _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  }
}

}  // namespace

void quantize_activations(const float* x, int64_t n, QuantizedActivations& a, DType weights) {
  a.n = n;
  a.q.resize(size_t(n));
  a.block_d.resize(size_t(n / 32));
  const std::vector<float>& d = a.block_d;
  if (quant::active_isa() != quant::Isa::Scalar) quantize_blocks_avx2(x, n, a.q.data(), a.block_d.data());
  else quantize_blocks_scalar(x, n, a.q.data(), a.block_d.data());
  // Per lane of 4 elements the integer sum of q; everything below is built from these.
  static thread_local std::vector<int32_t> sums;  // kept: decode quantizes ~150 times a token
  sums.resize(size_t(n / 4));
  for (size_t l = 0; l < sums.size(); ++l) {
    const int8_t* q = a.q.data() + 4 * l;
    sums[l] = q[0] + q[1] + q[2] + q[3];
  }
  // An interleaved type's kernel reads only its own order (decode quantizes ~150 times a token:
  // building every order cost ~2% of 7B decode); any other type gets all of them.
  const bool all = !is_interleaved(weights);
  const auto wants = [&](DType t) { return all || weights == t; };
  const bool groups_of_128 = n % 128 == 0;  // the interleaved and nibble orders need whole groups
  [](auto&... v) { (v.clear(), ...); }(a.lane_d, a.lane_s, a.lane_off[0], a.lane_off[1], a.lane_off[2], a.k_sums, a.q4_lane_off,
                                        a.q4, a.q4_lane_d, a.q4_lane_s, a.k32, a.k16, a.off32, a.d16, a.off16,
                                        a.block_s, a.pairs);
  if (wants(DType::Q4_Kx8)) {
    a.k_sums.assign(n % 256 == 0 ? size_t(n / 16) : 0, 0.0f);
    for (size_t j = 0; j < a.k_sums.size() / 16 * 8; ++j) {  // sub-block j: lanes 8j..8j+7
      int32_t s = 0;
      for (size_t l = 8 * j; l < 8 * j + 8; ++l) s += sums[l];
      a.k_sums[j / 8 * 16 + 8 + j % 8] = d[j] * float(s);
    }
  }
  if (all) {
    a.lane_d.resize(size_t(n / 4));
    a.lane_s.resize(size_t(n / 4));
    for (auto& v : a.lane_off) v.resize(size_t(n / 4));
    for (size_t l = 0; l < sums.size(); ++l) {
      const float dl = d[l / 8];
      a.lane_d[l] = dl;
      a.lane_s[l] = dl * float(sums[l]);
      a.lane_off[0][l] = -8 * sums[l];
      a.lane_off[1][l] = -32 * sums[l];
      a.lane_off[2][l] = -128 * sums[l];
    }
  }
  // Per 4 blocks of S elements, group v takes 4 bytes at S·i + 4v from each block i (int32 lanes).
  const auto lane_order = [&](size_t S, std::vector<int8_t>& out) {
    out.resize(size_t(n));
    for (size_t g = 0; g < size_t(n) / (4 * S); ++g)
      for (size_t v = 0; v < S / 4; ++v)
        for (size_t i = 0; i < 4; ++i) std::memcpy(&out[4 * S * g + 16 * v + 4 * i], &a.q[4 * S * g + S * i + 4 * v], 4);
  };
  if (groups_of_128 && (wants(DType::Q4_0x8) || wants(DType::Q4_Kx8))) lane_order(32, a.k32);
  if (groups_of_128 && wants(DType::Q6_Kx8)) {
    lane_order(16, a.k16);
    a.d16.resize(size_t(n / 16));
    a.off16.resize(size_t(n / 16));
    for (size_t k = 0; k < a.d16.size(); ++k) {
      a.d16[k] = d[k / 2];
      a.off16[k] = -32 * (sums[4 * k] + sums[4 * k + 1] + sums[4 * k + 2] + sums[4 * k + 3]);
    }
  }
  if (groups_of_128 && wants(DType::Q4_0x8)) {
    a.off32.resize(size_t(n / 32));
    for (size_t b = 0; b < a.off32.size(); ++b) a.off32[b] = -8 * std::accumulate(&sums[8 * b], &sums[8 * b + 8], 0);
  }
  // Lane j of a 4-bit block pairs elements 4j..4j+3 with 16+4j..16+4j+3 (lanes j and j + 4).
  if (wants(DType::Q4_1x8)) {
    if (n % 64 == 0) {  // per 2 blocks, step s: bytes 4s..4s+3 of the first block, then of the second
      a.pairs.resize(size_t(n));
      for (size_t c = 0; c < size_t(n / 64); ++c)
        for (size_t st = 0; st < 8; ++st)
          for (size_t i = 0; i < 2; ++i) std::memcpy(&a.pairs[64 * c + 8 * st + 4 * i], &a.q[64 * c + 32 * i + 4 * st], 4);
    }
    a.block_s.resize(size_t(n / 32));
    for (size_t b = 0; b < a.block_s.size(); ++b) a.block_s[b] = d[b] * float(std::accumulate(&sums[8 * b], &sums[8 * b + 8], 0));
  }
  if (wants(DType::Q8_0x8)) {
    a.q4_lane_off.resize(size_t(n / 8));
    for (size_t b = 0; b < size_t(n / 32); ++b)
      for (size_t j = 0; j < 4; ++j) a.q4_lane_off[4 * b + j] = -8 * (sums[8 * b + j] + sums[8 * b + 4 + j]);
  }
  if (!all || !groups_of_128) return;
  a.q4.resize(size_t(n));
  a.q4_lane_d.resize(size_t(n / 8));
  a.q4_lane_s.resize(size_t(n / 8));
  for (int64_t g = 0; g < n / 128; ++g) {
    const int8_t* q = a.q.data() + 128 * g;
    int8_t* o = a.q4.data() + 128 * g;
    for (size_t k = 0; k < 4; ++k) {
      std::memcpy(o + 16 * k, q + 32 * k, 16);
      std::memcpy(o + 64 + 16 * k, q + 32 * k + 16, 16);
      const size_t b = size_t(4 * g) + k;
      for (size_t j = 0; j < 4; ++j) {
        a.q4_lane_d[4 * b + j] = d[b];
        a.q4_lane_s[4 * b + j] = d[b] * float(sums[8 * b + j] + sums[8 * b + 4 + j]);
      }
    }
  }
}

}  // namespace zephyr

#include "kernels/quant/formats.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace zephyr {

namespace {

float h2f(uint16_t h) { return f16_to_f32(h); }

// The 6-bit scale and min of sub-block j of a Q4_K block (bytes 0-3: scales 0-3 and the top bits
// of scales 4-7, bytes 4-7 the same for mins, bytes 8-11 the low nibbles of scales/mins 4-7).
void q4k_scale_min(const uint8_t* s, int j, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Round half away from zero, as C's roundf (ggml's Q8_0 reference rounds so).
int round_away(float v) { return int(std::round(v)); }

void quantize_q8_0(const float* x, BlockQ8_0* out, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    for (int i = 0; i < 32; ++i) out[b].q[i] = int8_t(round_away(x[i] * id));
  }
}

// The element of largest magnitude, with its sign (the first one on ties).
float signed_absmax(const float* x, int n) {
  float best = 0, v = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > best) best = std::fabs(x[i]), v = x[i];
  return v;
}

void quantize_q4_0(const float* x, BlockQ4_0* out, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    const float d = signed_absmax(x, 32) / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    uint8_t q[32];
    for (int i = 0; i < 32; ++i) {
      const float t = x[i] * id;
      q[i] = uint8_t(std::min(15, int(t + 8.5f)));
    }
    for (int j = 0; j < 16; ++j) out[b].q[j] = uint8_t(q[j] | (q[j + 16] << 4));
  }
}

void quantize_q4_1(const float* x, BlockQ4_1* out, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < 32; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
    const float d = (hi - lo) / 15.0f, id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    out[b].m = f32_to_f16(lo);
    uint8_t q[32];
    for (int i = 0; i < 32; ++i) {
      const float t = (x[i] - lo) * id;
      q[i] = uint8_t(std::clamp(int(t + 0.5f), 0, 15));
    }
    for (int j = 0; j < 16; ++j) out[b].q[j] = uint8_t(q[j] | (q[j + 16] << 4));
  }
}

// Q4_K: per sub-block the range [min(0, lo), hi] in 15 steps; the 8 scales and mins are then
// themselves quantized to 6 bits against the block's d and dmin.
void quantize_q4_k(const float* x, BlockQ4_K* out, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 256) {
    float scale[8], mn[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      float lo = 0, hi = x[32 * j];
      for (int i = 0; i < 32; ++i) lo = std::min(lo, x[32 * j + i]), hi = std::max(hi, x[32 * j + i]);
      scale[j] = std::max(hi - lo, 0.0f) / 15.0f;
      mn[j] = -lo;
      max_scale = std::max(max_scale, scale[j]);
      max_min = std::max(max_min, mn[j]);
    }
    BlockQ4_K& o = out[b];
    o.d = f32_to_f16(max_scale / 63.0f);
    o.dmin = f32_to_f16(max_min / 63.0f);
    const float d = h2f(o.d), dmin = h2f(o.dmin);
    int sc[8], m[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = d > 0 ? std::clamp(int(std::nearbyint(scale[j] / d)), 0, 63) : 0;
      m[j] = dmin > 0 ? std::clamp(int(std::nearbyint(mn[j] / dmin)), 0, 63) : 0;
    }
    for (int j = 0; j < 4; ++j) {
      o.scales[j] = uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
      o.scales[j + 4] = uint8_t(m[j] | ((m[j + 4] >> 4) << 6));
      o.scales[j + 8] = uint8_t((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
    }
    uint8_t q[256];
    for (int j = 0; j < 8; ++j) {
      const float s = d * float(sc[j]), off = dmin * float(m[j]);
      for (int i = 0; i < 32; ++i)
        q[32 * j + i] = s > 0 ? uint8_t(std::clamp(int(std::nearbyint((x[32 * j + i] + off) / s)), 0, 15)) : 0;
    }
    q4k_store_values(q, o);
  }
}

// Q6_K: per 16 elements a signed scale mapping the largest magnitude to −32; the 16 scales are
// int8 multiples of the block's d.
void quantize_q6_k(const float* x, BlockQ6_K* out, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 256) {
    float scale[16], max_abs = 0;
    for (int k = 0; k < 16; ++k) {
      scale[k] = signed_absmax(x + 16 * k, 16) / -32.0f;
      max_abs = std::max(max_abs, std::fabs(scale[k]));
    }
    BlockQ6_K& o = out[b];
    o.d = f32_to_f16(max_abs / 127.0f);
    const float d = h2f(o.d);
    uint8_t u[256];
    for (int k = 0; k < 16; ++k) {
      const int sc = d > 0 ? std::clamp(int(std::nearbyint(scale[k] / d)), -128, 127) : 0;
      o.scales[k] = int8_t(sc);
      const float s = d * float(sc);
      for (int i = 0; i < 16; ++i)
        u[16 * k + i] = uint8_t(32 + (s != 0 ? std::clamp(int(std::nearbyint(x[16 * k + i] / s)), -32, 31) : 0));
    }
    q6k_store_values(u, o);
  }
}

}  // namespace

void q4k_values(const BlockQ4_K& b, uint8_t* u) {
  for (int j = 0; j < 8; ++j)
    for (int l = 0; l < 32; ++l) u[32 * j + l] = (b.q[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF;
}

void q4k_store_values(const uint8_t* u, BlockQ4_K& b) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) b.q[32 * c + l] = uint8_t(u[64 * c + l] | (u[64 * c + 32 + l] << 4));
}

void q6k_store_values(const uint8_t* u, BlockQ6_K& b) {
  for (int n = 0; n < 2; ++n)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* v = u + 128 * n + l;  // parts 0..3 at v[0], v[32], v[64], v[96]
      b.ql[64 * n + l] = uint8_t((v[0] & 0xF) | ((v[64] & 0xF) << 4));
      b.ql[64 * n + 32 + l] = uint8_t((v[32] & 0xF) | ((v[96] & 0xF) << 4));
      b.qh[32 * n + l] = uint8_t((v[0] >> 4) | ((v[32] >> 4) << 2) | ((v[64] >> 4) << 4) | ((v[96] >> 4) << 6));
    }
}

void dequantize_row(DType t, const void* src, float* y, int64_t n) {
  const int64_t nb = n / block_elements(t);
  switch (t) {
    case DType::Q8_0:
      for (int64_t b = 0; b < nb; ++b) {
        const auto& k = static_cast<const BlockQ8_0*>(src)[b];
        const float d = h2f(k.d);
        for (int i = 0; i < 32; ++i) y[32 * b + i] = d * float(k.q[i]);
      }
      return;
    case DType::Q4_0:
    case DType::Q4_1:
      for (int64_t b = 0; b < nb; ++b) {
        float d, m;
        const uint8_t* q;
        if (t == DType::Q4_0) {
          const auto& k = static_cast<const BlockQ4_0*>(src)[b];
          d = h2f(k.d), m = -8.0f * d, q = k.q;
        } else {
          const auto& k = static_cast<const BlockQ4_1*>(src)[b];
          d = h2f(k.d), m = h2f(k.m), q = k.q;
        }
        for (int j = 0; j < 16; ++j) {
          y[32 * b + j] = d * float(q[j] & 0xF) + m;
          y[32 * b + j + 16] = d * float(q[j] >> 4) + m;
        }
      }
      return;
    case DType::Q4_K:
      for (int64_t b = 0; b < nb; ++b) {
        const auto& k = static_cast<const BlockQ4_K*>(src)[b];
        const float d = h2f(k.d), dmin = h2f(k.dmin);
        for (int j = 0; j < 8; ++j) {
          int sc, m;
          q4k_scale_min(k.scales, j, sc, m);
          const float s = d * float(sc), off = dmin * float(m);
          const uint8_t* q = k.q + 32 * (j / 2);
          // fma: one rounding, as the vectorised dequantization does
          for (int l = 0; l < 32; ++l) y[256 * b + 32 * j + l] = std::fma(s, float(j % 2 ? q[l] >> 4 : q[l] & 0xF), -off);
        }
      }
      return;
    case DType::Q6_K:
      for (int64_t b = 0; b < nb; ++b) {
        const auto& k = static_cast<const BlockQ6_K*>(src)[b];
        const float d = h2f(k.d);
        for (int i = 0; i < 256; ++i) {
          const float sc = d * float(k.scales[i / 16]);
          y[256 * b + i] = std::fma(float(q6k_value(k, i)), sc, -32.0f * sc);
        }
      }
      return;
    default: to_f32(t, src, y, size_t(n));
  }
}

bool can_quantize(DType t) { return is_quantized(t) && !is_interleaved(t); }

void quantize_row(DType t, const float* x, void* dst, int64_t n) {
  const int64_t nb = n / block_elements(t);
  switch (t) {
    case DType::Q8_0: return quantize_q8_0(x, static_cast<BlockQ8_0*>(dst), nb);
    case DType::Q4_0: return quantize_q4_0(x, static_cast<BlockQ4_0*>(dst), nb);
    case DType::Q4_1: return quantize_q4_1(x, static_cast<BlockQ4_1*>(dst), nb);
    case DType::Q4_K: return quantize_q4_k(x, static_cast<BlockQ4_K*>(dst), nb);
    case DType::Q6_K: return quantize_q6_k(x, static_cast<BlockQ6_K*>(dst), nb);
    case DType::Q4_0x8: case DType::Q8_0x8: case DType::Q4_1x8: case DType::Q4_Kx8: case DType::Q6_Kx8: throw Error("quantize_row: interleaved layouts are made by interleave_rows");
    case DType::F32: std::memcpy(dst, x, size_t(n) * 4); return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(x[i]);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(x[i]);
      return;
  }
}

}  // namespace zephyr

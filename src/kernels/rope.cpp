#include "kernels/rope.h"

#include <cmath>

#include "core/parallel.h"

namespace zephyr {

void rope_angles(const int64_t* positions, int64_t n, int64_t head_dim, double theta, float* cos, float* sin) {
  const int64_t half = head_dim / 2;
  // Angles rounded as transformers computes them (fp32 inv_freq, fp32 pos · inv_freq), so long
  // positions agree with it to the last bits that matter.
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) inv_freq[size_t(i)] = float(1.0 / std::pow(theta, double(2 * i) / double(head_dim)));
  for (int64_t t = 0; t < n; ++t) {
    const float pos = float(positions[t]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[size_t(i)];
      cos[t * half + i] = float(std::cos(double(angle)));
      sin[t * half + i] = float(std::sin(double(angle)));
    }
  }
}

void rope_rotate(float* x, int64_t n, int64_t heads, int64_t head_dim, const float* cos, const float* sin, bool inverse) {
  const int64_t half = head_dim / 2;
  const float sign = inverse ? -1.0f : 1.0f;
  for (int64_t t = 0; t < n; ++t) {
    const float* c = cos + t * half;
    const float* s = sin + t * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half], si = sign * s[i];
        v[i] = a * c[i] - b * si;
        v[i + half] = b * c[i] + a * si;
      }
    }
  }
}

RopeTable rope_table(const int64_t* positions, int64_t n, int64_t head_dim, double theta) {
  const int64_t half = head_dim / 2;
  RopeTable r{head_dim, std::vector<float>(size_t(n * half)), std::vector<float>(size_t(n * half))};
  parallel_for(size_t(n), 16, [&](size_t t0, size_t t1) {
    rope_angles(positions + t0, int64_t(t1 - t0), head_dim, theta, r.cos.data() + t0 * size_t(half), r.sin.data() + t0 * size_t(half));
  });
  return r;
}

void rope_apply(float* x, int64_t n, int64_t heads, const RopeTable& table, bool inverse) {
  const int64_t half = table.head_dim / 2;
  parallel_for(size_t(n), 16, [&](size_t t0, size_t t1) {
    rope_rotate(x + int64_t(t0) * heads * table.head_dim, int64_t(t1 - t0), heads, table.head_dim, table.cos.data() + t0 * size_t(half),
                table.sin.data() + t0 * size_t(half), inverse);
  });
}

void rope_apply(float* x, int64_t n, int64_t heads, int64_t head_dim, const int64_t* positions, double theta,
                bool inverse) {
  rope_apply(x, n, heads, rope_table(positions, n, head_dim, theta), inverse);
}

}  // namespace zephyr

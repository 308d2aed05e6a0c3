#include "kernels/rope.h"

#include <cmath>
#include <vector>

#include "core/parallel.h"

namespace zephyr {

void rope_apply(float* x, int64_t n, int64_t heads, int64_t head_dim, const int64_t* positions, double theta,
                bool inverse) {
  const int64_t half = head_dim / 2;
  // Angles rounded as transformers computes them (fp32 inv_freq, fp32 pos · inv_freq), so long
  // positions agree with it to the last bits that matter.
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = float(1.0 / std::pow(theta, double(2 * i) / double(head_dim)));
  parallel_for(size_t(n), 16, [&](size_t t0, size_t t1) {
    std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
    for (size_t t = t0; t < t1; ++t) {
      const float pos = float(positions[t]);
      for (int64_t i = 0; i < half; ++i) {
        const float angle = pos * inv_freq[i];
        cos_t[i] = float(std::cos(double(angle)));
        sin_t[i] = float(inverse ? -std::sin(double(angle)) : std::sin(double(angle)));
      }
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + (int64_t(t) * heads + h) * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          v[i] = a * cos_t[i] - b * sin_t[i];
          v[i + half] = b * cos_t[i] + a * sin_t[i];
        }
      }
    }
  });
}

void rope_forward(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t pos0, double theta) {
  std::vector<int64_t> positions(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) positions[size_t(t)] = pos0 + t;
  rope_apply(x, n, heads, head_dim, positions.data(), theta, false);
}

}  // namespace zephyr

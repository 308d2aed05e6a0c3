#include "kernels/rmsnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "kernels/vec.h"

namespace zephyr {

void rmsnorm_forward(const float* x, const float* w, int64_t n, int64_t dim, double eps, float* y) {
  parallel_for_balanced(size_t(n), 16, [&](size_t r0, size_t r1) {
    for (size_t i = r0; i < r1; ++i) {
      const float* xi = x + i * dim;
      float* yi = y + i * dim;
      const float inv = float(1.0 / std::sqrt(double(vec::sum_squares(xi, dim)) / double(dim) + eps));
      for (int64_t j = 0; j < dim; ++j) yi[j] = w[j] * (xi[j] * inv);
    }
  });
}

void rmsnorm_backward(const float* x, const float* w, const float* dy, int64_t n, int64_t dim, double eps, float* dx,
                      float* dw) {
  // dw sums over rows: each fixed chunk of rows sums its own part, and the parts are added in
  // chunk order, so threads share the work and dw has the same bits for any thread count.
  constexpr int64_t C = 32;
  const int64_t chunks = (n + C - 1) / C;
  std::vector<float> part(size_t(chunks * dim), 0.0f);
  parallel_for_balanced(size_t(chunks), 1, [&](size_t c0, size_t c1) {
    for (int64_t c = int64_t(c0); c < int64_t(c1); ++c) {
      float* pw = part.data() + c * dim;
      for (int64_t i = c * C; i < std::min(n, (c + 1) * C); ++i) {
        const float* xi = x + i * dim;
        const float* gi = dy + i * dim;
        float* dxi = dx + i * dim;
        const double r = 1.0 / std::sqrt(double(vec::sum_squares(xi, dim)) / double(dim) + eps);
        double s = 0;
        for (int64_t j = 0; j < dim; ++j) s += double(w[j]) * gi[j] * xi[j];
        const float a = float(r), b = float(s * r * r * r / double(dim));
        for (int64_t j = 0; j < dim; ++j) {
          dxi[j] += a * w[j] * gi[j] - b * xi[j];
          pw[j] += gi[j] * xi[j] * a;
        }
      }
    }
  });
  for (int64_t c = 0; c < chunks && dw; ++c)
    for (int64_t j = 0; j < dim; ++j) dw[j] += part[size_t(c * dim + j)];
}

}  // namespace zephyr

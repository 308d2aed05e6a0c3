#include "kernels/rmsnorm.h"

#include <cmath>

#include "kernels/vec.h"

namespace zephyr {

void rmsnorm_forward(const float* x, const float* w, int64_t n, int64_t dim, double eps, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    float* yi = y + i * dim;
    const float inv = float(1.0 / std::sqrt(double(vec::sum_squares(xi, dim)) / double(dim) + eps));
    for (int64_t j = 0; j < dim; ++j) yi[j] = w[j] * (xi[j] * inv);
  }
}

}  // namespace zephyr

namespace zephyr {

void rmsnorm_backward(const float* x, const float* w, const float* dy, int64_t n, int64_t dim, double eps, float* dx,
                      float* dw) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    const float* gi = dy + i * dim;
    float* dxi = dx + i * dim;
    const double r = 1.0 / std::sqrt(double(vec::sum_squares(xi, dim)) / double(dim) + eps);
    double s = 0;
    for (int64_t j = 0; j < dim; ++j) s += double(w[j]) * gi[j] * xi[j];
    const float a = float(r), b = float(s * r * r * r / double(dim));
    for (int64_t j = 0; j < dim; ++j) {
      dxi[j] += a * w[j] * gi[j] - b * xi[j];
      dw[j] += gi[j] * xi[j] * a;
    }
  }
}

}  // namespace zephyr

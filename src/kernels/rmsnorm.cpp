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

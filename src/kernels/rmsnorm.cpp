#include "kernels/rmsnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "core/target_clones.h"
#include "kernels/vec.h"

namespace zephyr {

namespace {

// The rows' loops in AVX-512 / AVX2 / baseline versions, picked at load time (compiled at the
// baseline they ran 4 floats at a time), the same bits in each (no FMA contraction in this file).
ZEPHYR_CLONES_V4_V3 void normalize_row(const float* __restrict xi, const float* __restrict w, float inv, int64_t dim,
                                       float* __restrict yi) {
#pragma omp simd
  for (int64_t j = 0; j < dim; ++j) yi[j] = w[j] * (xi[j] * inv);
}

// dx += a w g - b x and the row's dw part += g x a, with a = 1/rms(x) and b = Σ(w g x) / (dim rms³).
// The sum runs in double, element j in lane j % 8 and the lanes added pairwise at the end: one
// in-order sum waited on every addition (~1% of a bf16 SFT step).
ZEPHYR_CLONES_V4_V3 void row_backward(const float* __restrict xi, const float* __restrict w, const float* __restrict gi, int64_t dim,
                                      double eps, float* __restrict dxi, float* __restrict pw) {
  const double r = 1.0 / std::sqrt(double(vec::sum_squares(xi, dim)) / double(dim) + eps);
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= dim; j += 8)
#pragma omp simd
    for (int64_t k = 0; k < 8; ++k) lane[k] += double(w[j + k]) * gi[j + k] * xi[j + k];
  for (; j < dim; ++j) lane[j % 8] += double(w[j]) * gi[j] * xi[j];
  const double s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  const float a = float(r), b = float(s * r * r * r / double(dim));
#pragma omp simd
  for (int64_t k = 0; k < dim; ++k) {
    dxi[k] += a * w[k] * gi[k] - b * xi[k];
    pw[k] += gi[k] * xi[k] * a;
  }
}

}  // namespace

void rmsnorm_rows(const float* x, const float* w, int64_t n, int64_t dim, double eps, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    const float inv = float(1.0 / std::sqrt(double(vec::sum_squares(xi, dim)) / double(dim) + eps));
    normalize_row(xi, w, inv, dim, y + i * dim);
  }
}

void rmsnorm_forward(const float* x, const float* w, int64_t n, int64_t dim, double eps, float* y) {
  parallel_for_balanced(size_t(n), 16, [&](size_t r0, size_t r1) {
    rmsnorm_rows(x + r0 * dim, w, int64_t(r1 - r0), dim, eps, y + r0 * dim);
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
      for (int64_t i = c * C; i < std::min(n, (c + 1) * C); ++i) row_backward(x + i * dim, w, dy + i * dim, dim, eps, dx + i * dim, pw);
    }
  });
  for (int64_t c = 0; c < chunks && dw; ++c)
    for (int64_t j = 0; j < dim; ++j) dw[j] += part[size_t(c * dim + j)];
}

}  // namespace zephyr

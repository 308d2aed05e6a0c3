#include "kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "kernels/vec.h"

namespace zephyr {

namespace {

// Row i's loss (0 for an ignored row) and its dlogits.
double row_loss(const float* logits, int64_t vocab, const int* target, float scale, float* dlogits, size_t i) {
  const float* l = logits + i * size_t(vocab);
  float* d = dlogits + i * size_t(vocab);
  if (target[i] == kIgnoreIndex) {
    for (int64_t v = 0; v < vocab; ++v) d[v] = 0;
    return 0;
  }
  const float m = vec::max(l, vocab), target_logit = l[target[i]];  // read before d (may be l) is written
  const double log_z = double(m) + std::log(vec::exp_sub(l, m, d, vocab));
  // softmax = e^(l − m) / Σ, from the values already in d
  vec::scale(d, scale * float(std::exp(double(m) - log_z)), vocab);
  d[target[i]] -= scale;
  return log_z - double(target_logit);
}

}  // namespace

void cross_entropy_rows(const float* logits, int64_t n, int64_t vocab, const int* target, float scale, float* dlogits,
                        double* losses) {
  for (int64_t i = 0; i < n; ++i) losses[i] = row_loss(logits, vocab, target, scale, dlogits, size_t(i));
}

double cross_entropy_forward_backward(const float* logits, int64_t n, int64_t vocab, const int* target, float scale,
                                      float* dlogits) {
  constexpr int64_t kRows = 16;
  std::vector<double> losses(static_cast<size_t>(n), 0.0);
  parallel_for_balanced(size_t((n + kRows - 1) / kRows), 1, [&](size_t b0, size_t b1) {
    const int64_t r0 = int64_t(b0) * kRows, r1 = std::min(n, int64_t(b1) * kRows);
    cross_entropy_rows(logits + r0 * vocab, r1 - r0, vocab, target + r0, scale, dlogits + r0 * vocab, losses.data() + r0);
  });
  double total = 0;
  for (double x : losses) total += x;
  return total;
}

}  // namespace zephyr

#include "kernels/cross_entropy.h"

#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "kernels/vec.h"

namespace zephyr {

double cross_entropy_forward_backward(const float* logits, int64_t n, int64_t vocab, const int* target, float scale,
                                      float* dlogits) {
  std::vector<double> row_loss(static_cast<size_t>(n), 0.0);
  parallel_for(size_t(n), 1, [&](size_t r0, size_t r1) {
    for (size_t i = r0; i < r1; ++i) {
      const float* l = logits + i * size_t(vocab);
      float* d = dlogits + i * size_t(vocab);
      if (target[i] == kIgnoreIndex) {
        for (int64_t v = 0; v < vocab; ++v) d[v] = 0;
        continue;
      }
      const float m = vec::max(l, vocab), target_logit = l[target[i]];  // read before d (may be l) is written
      const double log_z = double(m) + std::log(vec::exp_sub(l, m, d, vocab));
      row_loss[i] = log_z - double(target_logit);
      // softmax = e^(l − m) / Σ, from the values already in d
      vec::scale(d, scale * float(std::exp(double(m) - log_z)), vocab);
      d[target[i]] -= scale;
    }
  });
  double total = 0;
  for (double x : row_loss) total += x;
  return total;
}

}  // namespace zephyr

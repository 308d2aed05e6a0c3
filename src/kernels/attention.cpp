#include "kernels/attention.h"

#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "kernels/vec.h"

namespace zephyr {

void attention_forward(const float* q, int64_t n, int64_t pos0, const float* k, const float* v,
                       const AttentionShape& s, float* out) {
  const int64_t group = s.heads / s.kv_heads, kv_stride = s.kv_heads * s.head_dim;
  const float scale = float(1.0 / std::sqrt(double(s.head_dim)));
  parallel_for(size_t(n * s.heads), 1, [&](size_t begin, size_t end) {
    std::vector<float> scores;
    for (size_t task = begin; task < end; ++task) {
      const int64_t t = int64_t(task) / s.heads, h = int64_t(task) % s.heads, g = h / group;
      const int64_t pos = pos0 + t;
      const int64_t lo = s.window > 0 && pos - s.window + 1 > 0 ? pos - s.window + 1 : 0;
      const float* qv = q + (t * s.heads + h) * s.head_dim;
      scores.resize(size_t(pos - lo + 1));
      for (int64_t j = lo; j <= pos; ++j)
        scores[size_t(j - lo)] = vec::dot(qv, k + j * kv_stride + g * s.head_dim, s.head_dim) * scale;
      const float m = vec::max(scores.data(), int64_t(scores.size()));
      double sum = 0;
      for (auto& x : scores) {
        x = std::exp(x - m);
        sum += x;
      }
      const float inv = float(1.0 / sum);
      float* o = out + (t * s.heads + h) * s.head_dim;
      for (int64_t d = 0; d < s.head_dim; ++d) o[d] = 0;
      for (int64_t j = lo; j <= pos; ++j)
        vec::axpy(o, scores[size_t(j - lo)] * inv, v + j * kv_stride + g * s.head_dim, s.head_dim);
    }
  });
}

}  // namespace zephyr

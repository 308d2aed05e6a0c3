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

namespace {
int64_t first_key(int64_t t, const int64_t* seg_start, int64_t window) {
  int64_t lo = seg_start ? seg_start[t] : 0;
  if (window > 0 && t - window + 1 > lo) lo = t - window + 1;
  return lo;
}
}  // namespace

void attention_train_forward(const float* q, const float* k, const float* v, int64_t n, const int64_t* seg_start,
                             const AttentionShape& s, float* out, float* lse) {
  const int64_t group = s.heads / s.kv_heads, kv_stride = s.kv_heads * s.head_dim;
  const float scale = float(1.0 / std::sqrt(double(s.head_dim)));
  parallel_for(size_t(n * s.heads), 1, [&](size_t begin, size_t end) {
    std::vector<float> p;
    for (size_t task = begin; task < end; ++task) {
      const int64_t t = int64_t(task) / s.heads, h = int64_t(task) % s.heads, g = h / group;
      const int64_t lo = first_key(t, seg_start, s.window);
      const float* qv = q + (t * s.heads + h) * s.head_dim;
      p.resize(size_t(t - lo + 1));
      for (int64_t j = lo; j <= t; ++j) p[size_t(j - lo)] = vec::dot(qv, k + j * kv_stride + g * s.head_dim, s.head_dim) * scale;
      const float m = vec::max(p.data(), int64_t(p.size()));
      double sum = 0;
      for (auto& x : p) sum += x = std::exp(x - m);
      lse[t * s.heads + h] = m + float(std::log(sum));
      float* o = out + (t * s.heads + h) * s.head_dim;
      for (int64_t d = 0; d < s.head_dim; ++d) o[d] = 0;
      for (int64_t j = lo; j <= t; ++j)
        vec::axpy(o, float(p[size_t(j - lo)] / sum), v + j * kv_stride + g * s.head_dim, s.head_dim);
    }
  });
}

void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* dout,
                        const float* lse, int64_t n, const int64_t* seg_start, const AttentionShape& s, float* dq,
                        float* dk, float* dv) {
  const int64_t group = s.heads / s.kv_heads, kv_stride = s.kv_heads * s.head_dim, hd = s.head_dim;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  // One task per KV head: its keys and values collect gradients from every query head of its
  // group, so no two threads write the same dk/dv rows.
  parallel_for(size_t(s.kv_heads), 1, [&](size_t g0, size_t g1) {
    for (int64_t g = int64_t(g0); g < int64_t(g1); ++g)
      for (int64_t h = g * group; h < (g + 1) * group; ++h)
        for (int64_t t = 0; t < n; ++t) {
          const int64_t lo = first_key(t, seg_start, s.window);
          const float* qv = q + (t * s.heads + h) * hd;
          const float* go = dout + (t * s.heads + h) * hd;
          const float D = vec::dot(go, out + (t * s.heads + h) * hd, hd);
          float* gq = dq + (t * s.heads + h) * hd;
          for (int64_t j = lo; j <= t; ++j) {
            const float* kj = k + j * kv_stride + g * hd;
            const float* vj = v + j * kv_stride + g * hd;
            const float p = std::exp(vec::dot(qv, kj, hd) * scale - lse[t * s.heads + h]);
            const float ds = p * (vec::dot(go, vj, hd) - D) * scale;
            vec::axpy(gq, ds, kj, hd);
            vec::axpy(dk + j * kv_stride + g * hd, ds, qv, hd);
            vec::axpy(dv + j * kv_stride + g * hd, p, go, hd);
          }
        }
  });
}

}  // namespace zephyr

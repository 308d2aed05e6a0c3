#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"
#include "core/target_clones.h"

namespace zephyr {

bool is_no_decay_parameter(const std::string& name) {
  return name.find("norm") != std::string::npos || name.find("bias") != std::string::npos;
}

AdamW::AdamW(const TrainableModel& model)
    : m_(model.trainable_numel(), 0.0f), v_(model.trainable_numel(), 0.0f) {
  for (const ParamInfo& p : model.params()) decay_.push_back(!is_no_decay_parameter(p.name));
}

namespace {

// One tensor's update, compiled for AVX-512 / AVX2 / baseline and picked at run time: two
// divisions and a square root per element made the scalar loop ~6% of an SFT step. The
// operations are the same in every version (this file is compiled without FMA contraction), so
// the result has the same bits. The gradient is first multiplied by the clipping coefficient in
// double, as clip_grad_norm_ scales it (a coefficient of 1 leaves it exact), and cleared.
ZEPHYR_CLONES_V4_V3 void adamw_update(
    float* __restrict w, float* __restrict g, float* __restrict m, float* __restrict v, size_t n, double coef, float keep, float b1,
    float b2, float step_size, float sqrt_bc2, float eps) {
#pragma omp simd
  for (size_t j = 0; j < n; ++j) {
    const float gj = float(double(g[j]) * coef);
    g[j] = 0.0f;
    w[j] *= keep;
    m[j] = m[j] * b1 + gj * (1.0f - b1);
    v[j] = v[j] * b2 + gj * gj * (1.0f - b2);
    w[j] -= step_size * (m[j] / (std::sqrt(v[j]) / sqrt_bc2 + eps));
  }
}

// Σ x² in double over one chunk: element i goes to accumulator i % 4, each summed in order, and
// the four are added pairwise — a lane of 4 doubles per accumulator, so every version has the
// same bits (no FMA contraction in this file). The scalar loop took 20 ms for 40M gradients on 2
// threads, this one 5 ms (microbenchmark; ~1% of the ~56M model's SFT step).
ZEPHYR_CLONES_V4_V3 double chunk_sum_squares(const float* __restrict x, size_t n) {
  double s[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
#pragma omp simd
    for (size_t k = 0; k < 4; ++k) s[k] += double(x[i + k]) * double(x[i + k]);
  for (; i < n; ++i) s[i % 4] += double(x[i]) * x[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

}  // namespace

void AdamW::step(TrainableModel& model, const AdamWConfig& c, double lr, double grad_coef) {
  ++step_;
  const double bc1 = 1.0 - std::pow(c.beta1, double(step_)), bc2 = 1.0 - std::pow(c.beta2, double(step_));
  // The same float operations as torch's single-tensor AdamW: p *= 1 - lr*wd; m, v updated in
  // place; p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
  const float b1 = float(c.beta1), b2 = float(c.beta2), step_size = float(lr / bc1), sqrt_bc2 = float(std::sqrt(bc2));
  const float eps = float(c.eps);
  // One loop over all trainable elements (parameters lie back to back in the flat buffers), shared
  // out in pieces: a loop per tensor was ~60 loops a step, each ending with one thread waiting
  // for the other (~20% of the optimizer's time). The update is elementwise, so any split gives
  // the same bits.
  struct Span {
    size_t begin, end;
    float keep;
  };
  std::vector<Span> spans;
  for (size_t i = 0; i < model.params().size(); ++i) {
    const ParamInfo& p = model.params()[i];
    if (p.trainable) spans.push_back({p.grad_offset, p.grad_offset + p.numel, decay_[i] ? float(1.0 - lr * c.weight_decay) : 1.0f});
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  float* w = model.trainable_weights();
  float* g = model.grads().data();
  parallel_for_balanced(model.trainable_numel(), 4096, [&](size_t a, size_t b) {
    auto s = std::upper_bound(spans.begin(), spans.end(), a, [](size_t x, const Span& sp) { return x < sp.begin; });
    if (s != spans.begin()) --s;
    for (; s != spans.end() && s->begin < b; ++s) {
      const size_t lo = std::max(a, s->begin), hi = std::min(b, s->end);
      if (lo < hi)
        adamw_update(w + lo, g + lo, m_.data() + lo, v_.data() + lo, hi - lo, grad_coef, s->keep, b1, b2, step_size, sqrt_bc2, eps);
    }
  });
}

double grad_norm(const std::vector<float>& grads) {
  // Partial sums over fixed chunks (4 accumulators each), added in chunk order: threads share the
  // work, and the norm has the same bits for any thread count (resumed runs stay bit-identical).
  constexpr size_t C = size_t(1) << 16;
  const size_t n = grads.size(), chunks = (n + C - 1) / C;
  std::vector<double> part(chunks);
  parallel_for(chunks, 1, [&](size_t c0, size_t c1) {
    for (size_t c = c0; c < c1; ++c) part[c] = chunk_sum_squares(grads.data() + c * C, std::min(n, (c + 1) * C) - c * C);
  });
  double sq = 0;
  for (double p : part) sq += p;
  return std::sqrt(sq);
}

double clip_coefficient(double norm, double max_norm) {
  return max_norm > 0 ? std::min(1.0, max_norm / (norm + 1e-6)) : 1.0;
}

double scheduled_lr(const std::string& type, double base_lr, int64_t step, int64_t warmup, int64_t total) {
  if (type == "constant") return base_lr;
  if (step < warmup) return base_lr * double(step) / double(std::max<int64_t>(1, warmup));
  if (type == "constant_with_warmup") return base_lr;
  const double progress = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
  if (type == "linear") return base_lr * std::max(0.0, double(total - step) / double(std::max<int64_t>(1, total - warmup)));
  if (type == "cosine") return base_lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  fail("lr_scheduler_type", "unknown schedule '" + type + "'; expected linear, cosine, constant or constant_with_warmup");
}

}  // namespace zephyr

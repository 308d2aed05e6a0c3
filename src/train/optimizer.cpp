#include "train/optimizer.h"

#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace zephyr {

bool is_no_decay_parameter(const std::string& name) {
  return name.find("norm") != std::string::npos || name.find("bias") != std::string::npos;
}

AdamW::AdamW(const TrainableModel& model)
    : m_(model.weights().size(), 0.0f), v_(model.weights().size(), 0.0f) {
  for (const ParamInfo& p : model.params()) decay_.push_back(!is_no_decay_parameter(p.name));
}

void AdamW::step(TrainableModel& model, const AdamWConfig& c, double lr) {
  ++step_;
  const double bc1 = 1.0 - std::pow(c.beta1, double(step_)), bc2 = 1.0 - std::pow(c.beta2, double(step_));
  // The same float operations as torch's single-tensor AdamW: p *= 1 - lr*wd; m, v updated in
  // place; p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
  const float b1 = float(c.beta1), b2 = float(c.beta2), step_size = float(lr / bc1), sqrt_bc2 = float(std::sqrt(bc2));
  const float eps = float(c.eps);
  for (size_t i = 0; i < model.params().size(); ++i) {
    const ParamInfo& p = model.params()[i];
    float* w = model.weights().data() + p.offset;
    const float* g = model.grads().data() + p.offset;
    float* m = m_.data() + p.offset;
    float* v = v_.data() + p.offset;
    const float keep = decay_[i] ? float(1.0 - lr * c.weight_decay) : 1.0f;
    parallel_for(p.numel, 4096, [&](size_t a, size_t b) {
      for (size_t j = a; j < b; ++j) {
        w[j] *= keep;
        m[j] = m[j] * b1 + g[j] * (1.0f - b1);
        v[j] = v[j] * b2 + g[j] * g[j] * (1.0f - b2);
        w[j] -= step_size * (m[j] / (std::sqrt(v[j]) / sqrt_bc2 + eps));
      }
    });
  }
}

double clip_grad_norm(std::vector<float>& grads, double max_norm) {
  double sq = 0;
  for (float g : grads) sq += double(g) * g;
  const double norm = std::sqrt(sq);
  if (max_norm > 0) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
      for (auto& g : grads) g = float(g * coef);
  }
  return norm;
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

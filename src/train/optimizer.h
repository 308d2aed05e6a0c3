// AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected moments),
// gradient-norm clipping as torch.nn.utils.clip_grad_norm_, and transformers' learning-rate
// schedules — all over the model's flat fp32 buffers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/trainable.h"

namespace zephyr {

struct AdamWConfig {
  double lr = 2e-5, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

class AdamW {
 public:
  explicit AdamW(const TrainableModel& model);
  // One update with learning rate lr; decay skips norm weights (transformers' default). The
  // gradients are taken times grad_coef (clipping's coefficient: folded into the update, where a
  // pass of its own over the gradients took ~0.4% of a 56M SFT step's perf samples). The gradients
  // are then released (TrainableModel::release_grads): zero for the next step without a write.
  // With pack_bf16 (bf16 training without adapters) each linear weight is packed for the next
  // pass's bf16 GEMMs 16 rows at a time, right after those rows are updated and while they are in
  // cache (TrainableModel::trained_bf16): packed by the pass instead, every weight was read from
  // memory once more, and the packing's shuffles ran apart from the update's memory stalls.
  void step(TrainableModel& model, const AdamWConfig& c, double lr, double grad_coef = 1.0, bool pack_bf16 = false);
  int64_t steps() const { return step_; }

  // State for checkpoints: moments in the layout of the model's gradients, and the step count.
  std::vector<float>& exp_avg() { return m_; }
  std::vector<float>& exp_avg_sq() { return v_; }
  void set_steps(int64_t s) { step_ = s; }

 private:
  std::vector<float> m_, v_;
  std::vector<uint8_t> decay_;  // per parameter tensor
  int64_t step_ = 0;
};

// L2 norm of all gradients, and the factor torch.nn.utils.clip_grad_norm_ scales them by to bring
// it to max_norm: 1 when the norm is within it or max_norm <= 0 (no clipping).
double grad_norm(const Buffer& grads);
double clip_coefficient(double norm, double max_norm);

// transformers' get_scheduler: "linear", "cosine", "constant", "constant_with_warmup". step is
// the number of optimizer steps already taken (0 for the first).
double scheduled_lr(const std::string& type, double base_lr, int64_t step, int64_t warmup_steps, int64_t total_steps);

// True for the parameters transformers exempts from weight decay (norm weights and biases).
bool is_no_decay_parameter(const std::string& name);

}  // namespace zephyr

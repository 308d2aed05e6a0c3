// The training forward and backward pass over a batch of token rows: activations of every layer
// kept for the backward pass, loss = next-token cross-entropy over the labelled positions.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/trainable.h"

namespace zephyr {

// rows x seq tokens, right-padded. labels follow HF: aligned with input_ids (the model shifts
// them), kIgnoreIndex (-100) where there is no loss. positions / seg_start describe packed rows
// (several conversations in one row restart their positions and do not attend across); empty
// means plain rows (positions 0..seq-1, one segment).
struct TokenBatch {
  int64_t rows = 0, seq = 0;
  std::vector<int> input_ids, labels;
  std::vector<int64_t> positions, seg_start;
};

struct LossSum {
  double nll = 0;       // summed over target tokens
  int64_t targets = 0;  // number of target tokens
  std::vector<double> row_nll;       // per row of the batch
  std::vector<int64_t> row_targets;  // per row of the batch
};

// Adds grad_scale * d(nll)/d(params) to model.grads() and returns the summed loss. Callers pass
// grad_scale = 1 / (targets of the whole optimizer step) to get transformers' mean loss.
// checkpointing keeps only each layer's input and recomputes the rest during the backward pass
// (less memory, ~1/3 more compute, identical gradients).
// bf16 feeds every linear layer bf16 inputs with fp32 accumulation (needs AVX512-BF16; callers
// check gemm_bf16_available()); weights, gradients and everything else stay fp32.
LossSum forward_backward(TrainableModel& model, const TokenBatch& batch, float grad_scale, bool checkpointing = false,
                         bool bf16 = false);

// For losses built on whole-sequence log-probs (DPO): runs every row forward, asks `scales` for
// one gradient scale per row given the per-row losses, then backpropagates each row with
// grad_scale * its scale — one forward pass instead of a scoring pass plus a training pass.
using RowScalesFromLosses = std::function<std::vector<float>(const LossSum&)>;
LossSum forward_backward_deferred(TrainableModel& model, const TokenBatch& batch, float grad_scale, bool checkpointing,
                                  bool bf16, const RowScalesFromLosses& scales);

// The summed loss alone (evaluation): no activations kept, no gradients.
LossSum forward_loss(const TrainableModel& model, const TokenBatch& batch, bool bf16 = false);

// Counts the target tokens of a batch (the labels after the shift).
int64_t count_targets(const TokenBatch& batch);

}  // namespace zephyr

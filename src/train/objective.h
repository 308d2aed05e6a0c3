// What a training stage optimises, so one trainer serves SFT, pretraining and DPO: the examples,
// how a step's loss is normalised (target tokens for SFT, pairs for DPO), and the loss, gradient
// and metrics of a group of examples.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/trainable.h"

namespace zephyr {

struct ObjectiveStats {
  double loss_sum = 0;                   // divide by the step's weight for the loss
  std::map<std::string, double> sums;    // metric sums over examples (divide by `count`)
  double count = 0;                      // examples (rows or pairs)
  int64_t tokens = 0;                    // tokens processed
};

// How the passes run: gradient checkpointing, bf16 matmul inputs.
struct PassOptions {
  bool checkpointing = false, bf16 = false;
};

class Objective {
 public:
  virtual ~Objective() = default;
  virtual size_t train_size() const = 0;
  virtual size_t eval_size() const = 0;
  // The share of the step's loss normaliser these examples carry.
  virtual double weight(const std::vector<size_t>& examples) const = 0;
  // Adds the gradient of scale * loss_sum to model.grads().
  virtual ObjectiveStats train_step(TrainableModel& model, const std::vector<size_t>& examples, double scale,
                                    const PassOptions& pass) = 0;
  // Loss (loss_sum / weight of all eval examples) and metrics over the held-out examples.
  virtual ObjectiveStats evaluate(const TrainableModel& model, int64_t batch_size) = 0;
  virtual double eval_weight() const = 0;
};

}  // namespace zephyr

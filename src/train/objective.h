// What a training stage optimises, so one trainer serves SFT, pretraining and DPO: the examples,
// how a step's loss is normalised (target tokens for SFT, pairs for DPO), and the loss, gradient
// and metrics of a group of examples.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model/trainable.h"

namespace zephyr {

struct ObjectiveStats {
  double loss_sum = 0;                   // divide by the step's weight for the loss
  std::map<std::string, double> sums;    // metric sums over examples (divide by `count`)
  double count = 0;                      // examples (rows or pairs)
  int64_t tokens = 0;                    // tokens processed
};

// This process's part of a data-parallel job: rank `rank` of `size` (train/world.h).
struct Shard {
  int rank = 0, size = 1;
  // The rank's contiguous part [first, last) of n items, split as evenly as possible.
  std::pair<size_t, size_t> share(size_t n) const { return {n * size_t(rank) / size_t(size), n * size_t(rank + 1) / size_t(size)}; }
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
  // Loss (loss_sum / weight of all eval examples) and metrics over the shard's share of the
  // held-out examples (the whole set for the one-process shard); the shards' stats sum to the
  // whole set's.
  virtual ObjectiveStats evaluate(const TrainableModel& model, int64_t batch_size, Shard shard) = 0;
  // The keys train_step and evaluate put in ObjectiveStats::sums, so ranks can sum them.
  virtual std::vector<std::string> metric_names() const { return {}; }
  virtual double eval_weight() const = 0;
};

}  // namespace zephyr

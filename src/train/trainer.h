// The training loop every stage shares: seeded epoch order, micro-batches with gradient
// accumulation (loss normalised by the target tokens of the whole step, as transformers does),
// clipping, AdamW and the schedule, logging to metrics.jsonl, evaluation, checkpoints written
// atomically and resumption that ends bit-identical to an uninterrupted run.
#pragma once
#include <functional>
#include <vector>

#include "model/training.h"
#include "train/objective.h"
#include "train/train_config.h"

namespace zephyr {

struct TrainSummary {
  int64_t steps = 0;
  double final_loss = 0, eval_loss = -1;
};

// The complete checkpoint-N directories in output_dir, oldest first (a checkpoint-N.tmp was
// interrupted mid-write and is not one).
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& output_dir);

// Trains `model` in place and writes the final model to cfg.output_dir. With resume, continues
// from the newest checkpoint-N in output_dir (an Error when there is none).
TrainSummary train(const TrainConfig& cfg, TrainableModel& model, Objective& objective, bool resume);

}  // namespace zephyr

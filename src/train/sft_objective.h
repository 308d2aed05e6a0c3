// Next-token cross-entropy over labelled tokens (SFT and pretraining), normalised by the target
// tokens of the whole optimizer step as transformers does.
#pragma once
#include "train/objective.h"
#include "train/sft_data.h"

namespace zephyr {

class SftObjective : public Objective {
 public:
  SftObjective(std::vector<TokenizedRow> train, std::vector<TokenizedRow> eval)
      : train_(std::move(train)), eval_(std::move(eval)) {}
  size_t train_size() const override { return train_.size(); }
  size_t eval_size() const override { return eval_.size(); }
  double weight(const std::vector<size_t>& examples) const override;
  ObjectiveStats train_step(TrainableModel& model, const std::vector<size_t>& examples, double scale,
                            const PassOptions& pass) override;
  ObjectiveStats evaluate(const TrainableModel& model, int64_t batch_size, Shard shard) override;
  double eval_weight() const override;

 private:
  std::vector<TokenizedRow> train_, eval_;
};

}  // namespace zephyr

// Direct preference optimisation (Rafailov et al.) with TRL's loss types and metrics. The
// reference model's log-probs are computed once before training (TRL's
// precompute_ref_log_probs), so training holds one model.
#pragma once
#include <string>
#include <vector>

#include "train/dpo_data.h"
#include "train/objective.h"

namespace zephyr {

struct DpoConfig {
  double beta = 0.1;
  std::string loss_type = "sigmoid";  // sigmoid | ipo | hinge
  double label_smoothing = 0.0;       // sigmoid only (conservative DPO)
  void validate() const;
  // IPO scores a completion by its mean token log-prob, the others by the sum (as TRL).
  bool mean_logps() const { return loss_type == "ipo"; }
};

struct PairLogps {
  double chosen = 0, rejected = 0;
};

// One pair's loss and its derivative by h = (π_c − ref_c) − (π_r − ref_r).
struct DpoTerm {
  double loss = 0, dloss_dh = 0, reward_chosen = 0, reward_rejected = 0;
};
DpoTerm dpo_term(const DpoConfig& c, PairLogps policy, PairLogps ref);

// Log-probs of each pair's completions under a model, batch_size pairs at a time.
std::vector<PairLogps> pair_logps(const TrainableModel& model, const std::vector<PreferencePair>& pairs,
                                  int64_t batch_size, bool mean);

class DpoObjective : public Objective {
 public:
  DpoObjective(DpoConfig c, std::vector<PreferencePair> train, std::vector<PreferencePair> eval,
               std::vector<PairLogps> ref_train, std::vector<PairLogps> ref_eval);
  size_t train_size() const override { return train_.size(); }
  size_t eval_size() const override { return eval_.size(); }
  double weight(const std::vector<size_t>& examples) const override { return double(examples.size()); }
  double eval_weight() const override { return double(eval_.size()); }
  ObjectiveStats train_step(TrainableModel& model, const std::vector<size_t>& examples, double scale,
                            const PassOptions& pass) override;
  ObjectiveStats evaluate(const TrainableModel& model, int64_t batch_size, Shard shard) override;
  std::vector<std::string> metric_names() const override;

 private:
  ObjectiveStats run(TrainableModel& model, const std::vector<PreferencePair>& pairs, const std::vector<PairLogps>& ref,
                     const std::vector<size_t>& examples, double scale, bool backward, const PassOptions& pass);
  DpoConfig c_;
  std::vector<PreferencePair> train_, eval_;
  std::vector<PairLogps> ref_train_, ref_eval_;
};

}  // namespace zephyr

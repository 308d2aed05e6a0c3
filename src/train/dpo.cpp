#include "train/dpo.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace zephyr {

namespace {

constexpr int kPad = 0;  // after the real tokens and unlabelled: never attended to, never scored

double log_sigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }
double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }

// Rows [chosen of each pair..., rejected of each pair...].
TokenBatch pair_batch(const std::vector<PreferencePair>& pairs, const std::vector<size_t>& idx) {
  std::vector<TokenizedRow> rows;
  for (size_t i : idx) rows.push_back(pairs[i].chosen);
  for (size_t i : idx) rows.push_back(pairs[i].rejected);
  return make_batch(rows, kPad);
}

double logp_of(const LossSum& l, size_t row, bool mean) {
  const double lp = -l.row_nll[row];
  return mean ? lp / double(std::max<int64_t>(1, l.row_targets[row])) : lp;
}

}  // namespace

void DpoConfig::validate() const {
  if (!(beta > 0)) fail("beta", "must be positive");
  if (loss_type != "sigmoid" && loss_type != "ipo" && loss_type != "hinge")
    fail("loss_type", "'" + loss_type + "' is not one of sigmoid, ipo, hinge");
  if (!(label_smoothing >= 0 && label_smoothing < 0.5)) fail("label_smoothing", "must be in [0, 0.5)");
}

DpoTerm dpo_term(const DpoConfig& c, PairLogps policy, PairLogps ref) {
  DpoTerm t;
  const double h = (policy.chosen - ref.chosen) - (policy.rejected - ref.rejected), b = c.beta;
  if (c.loss_type == "sigmoid") {
    const double ls = c.label_smoothing;
    t.loss = -log_sigmoid(b * h) * (1 - ls) - log_sigmoid(-b * h) * ls;
    t.dloss_dh = -b * (1 - ls) * sigmoid(-b * h) + b * ls * sigmoid(b * h);
  } else if (c.loss_type == "ipo") {
    const double d = h - 1.0 / (2.0 * b);
    t.loss = d * d;
    t.dloss_dh = 2 * d;
  } else {  // hinge
    t.loss = std::max(0.0, 1.0 - b * h);
    t.dloss_dh = 1.0 - b * h > 0 ? -b : 0.0;
  }
  t.reward_chosen = b * (policy.chosen - ref.chosen);
  t.reward_rejected = b * (policy.rejected - ref.rejected);
  return t;
}

std::vector<PairLogps> pair_logps(const TrainableModel& model, const std::vector<PreferencePair>& pairs,
                                  int64_t batch_size, bool mean) {
  std::vector<PairLogps> out(pairs.size());
  for (size_t b = 0; b < pairs.size(); b += size_t(batch_size)) {
    std::vector<size_t> idx;
    for (size_t i = b; i < std::min(pairs.size(), b + size_t(batch_size)); ++i) idx.push_back(i);
    const LossSum l = forward_loss(model, pair_batch(pairs, idx));
    for (size_t k = 0; k < idx.size(); ++k) out[idx[k]] = {logp_of(l, k, mean), logp_of(l, idx.size() + k, mean)};
  }
  return out;
}

DpoObjective::DpoObjective(DpoConfig c, std::vector<PreferencePair> train, std::vector<PreferencePair> eval,
                           std::vector<PairLogps> ref_train, std::vector<PairLogps> ref_eval)
    : c_(std::move(c)), train_(std::move(train)), eval_(std::move(eval)), ref_train_(std::move(ref_train)),
      ref_eval_(std::move(ref_eval)) {
  c_.validate();
  if (ref_train_.size() != train_.size() || ref_eval_.size() != eval_.size())
    fail("dpo", "reference log-probs do not match the pairs");
}

ObjectiveStats DpoObjective::run(TrainableModel& model, const std::vector<PreferencePair>& pairs,
                                 const std::vector<PairLogps>& ref, const std::vector<size_t>& idx, double scale,
                                 bool backward, const PassOptions& pass) {
  const TokenBatch batch = pair_batch(pairs, idx);
  const size_t n = idx.size();
  ObjectiveStats st;
  // The policy's log-probs give each pair's loss and dL/dh; the rows are then backpropagated
  // with Σ dL/dh_i · (log π_c − log π_r) as weights (log π = −nll, hence the signs).
  auto scales = [&](const LossSum& l) {
    std::vector<float> row_scales(2 * n);
    for (size_t k = 0; k < n; ++k) {
      const PairLogps policy{logp_of(l, k, c_.mean_logps()), logp_of(l, n + k, c_.mean_logps())};
      const DpoTerm t = dpo_term(c_, policy, ref[idx[k]]);
      st.loss_sum += t.loss;
      st.sums["rewards/chosen"] += t.reward_chosen;
      st.sums["rewards/rejected"] += t.reward_rejected;
      st.sums["rewards/accuracies"] += t.reward_chosen > t.reward_rejected ? 1.0 : 0.0;
      st.sums["rewards/margins"] += t.reward_chosen - t.reward_rejected;
      st.sums["logps/chosen"] += policy.chosen;
      st.sums["logps/rejected"] += policy.rejected;
      const double per_token_c = c_.mean_logps() ? 1.0 / double(std::max<int64_t>(1, l.row_targets[k])) : 1.0;
      const double per_token_r = c_.mean_logps() ? 1.0 / double(std::max<int64_t>(1, l.row_targets[n + k])) : 1.0;
      row_scales[k] = float(-t.dloss_dh * per_token_c);
      row_scales[n + k] = float(t.dloss_dh * per_token_r);
    }
    return row_scales;
  };
  if (backward) forward_backward_deferred(model, batch, float(scale), pass.checkpointing, pass.bf16, scales);
  else scales(forward_loss(model, batch));
  st.count = double(n);
  for (size_t i : idx) st.tokens += int64_t(pairs[i].chosen.input_ids.size() + pairs[i].rejected.input_ids.size());
  return st;
}

ObjectiveStats DpoObjective::train_step(TrainableModel& model, const std::vector<size_t>& examples, double scale,
                                        const PassOptions& pass) {
  return run(model, train_, ref_train_, examples, scale, true, pass);
}

std::vector<std::string> DpoObjective::metric_names() const {
  return {"logps/chosen", "logps/rejected", "rewards/accuracies", "rewards/chosen", "rewards/margins", "rewards/rejected"};
}

ObjectiveStats DpoObjective::evaluate(const TrainableModel& model, int64_t batch_size, Shard shard) {
  ObjectiveStats total;
  const auto [first, last] = shard.share(eval_.size());
  for (size_t b = first; b < last; b += size_t(batch_size)) {
    std::vector<size_t> idx;
    for (size_t i = b; i < std::min(last, b + size_t(batch_size)); ++i) idx.push_back(i);
    const ObjectiveStats s = run(const_cast<TrainableModel&>(model), eval_, ref_eval_, idx, 0.0, false, PassOptions{});
    total.loss_sum += s.loss_sum;
    total.count += s.count;
    for (auto& [k, v] : s.sums) total.sums[k] += v;
  }
  return total;
}

}  // namespace zephyr

#include "train/sft_objective.h"

#include <algorithm>

#include "kernels/cross_entropy.h"

namespace zephyr {

namespace {
// Padding comes after the real tokens, so they never attend to it, and it carries no label.
constexpr int kPad = 0;

int64_t row_targets(const TokenizedRow& r) {
  int64_t n = 0;
  for (size_t t = 1; t < r.labels.size(); ++t) n += r.labels[t] != kIgnoreIndex;
  return n;
}
}  // namespace

double SftObjective::weight(const std::vector<size_t>& examples) const {
  double n = 0;
  for (size_t i : examples) n += double(row_targets(train_[i]));
  return n;
}

double SftObjective::eval_weight() const {
  double n = 0;
  for (auto& r : eval_) n += double(row_targets(r));
  return n;
}

ObjectiveStats SftObjective::train_step(TrainableModel& model, const std::vector<size_t>& examples, double scale,
                                        const PassOptions& pass) {
  std::vector<TokenizedRow> rows;
  ObjectiveStats st;
  for (size_t i : examples) {
    rows.push_back(train_[i]);
    st.tokens += int64_t(train_[i].input_ids.size());
  }
  st.loss_sum = forward_backward(model, make_batch(rows, kPad), float(scale), pass.checkpointing, pass.bf16).nll;
  st.count = double(rows.size());
  return st;
}

ObjectiveStats SftObjective::evaluate(const TrainableModel& model, int64_t batch_size, Shard shard) {
  ObjectiveStats st;
  const auto [first, last] = shard.share(eval_.size());
  for (size_t i = first; i < last; i += size_t(batch_size)) {
    std::vector<TokenizedRow> rows(eval_.begin() + long(i), eval_.begin() + long(std::min(last, i + size_t(batch_size))));
    st.loss_sum += forward_loss(model, make_batch(rows, kPad)).nll;
  }
  st.count = double(last - first);
  return st;
}

}  // namespace zephyr

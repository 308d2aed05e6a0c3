#include "model/scoring.h"

#include <cmath>

namespace zephyr {

double token_nll(const float* logits, int64_t vocab, int target) {
  double m = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) m = std::max(m, double(logits[i]));
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - m);
  return m + std::log(sum) - double(logits[target]);
}

SequenceScore score_sequence(const Model& model, InferenceState& state, const std::vector<int>& ids) {
  SequenceScore s;
  if (ids.size() < 2) return s;
  const int64_t V = model.config.vocab_size, n = int64_t(ids.size());
  std::vector<float> logits(size_t(n * V));
  forward(model, ids.data(), n, state, logits.data(), true);
  for (int64_t i = 0; i + 1 < n; ++i) s.nll += token_nll(logits.data() + i * V, V, ids[size_t(i + 1)]);
  s.tokens = n - 1;
  return s;
}

}  // namespace zephyr

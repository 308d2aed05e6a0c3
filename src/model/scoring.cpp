#include "model/scoring.h"

#include <cmath>

#include "core/error.h"

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

SequenceScore score_windows(const Model& model, const std::vector<int>& ids, int bos, int64_t ctx,
                            const std::function<void(int64_t, int64_t, double)>& progress) {
  if (ctx < 2) fail_field("ctx", "must be at least 2 (BOS and one scored token)");
  if (ctx > model.config.max_position_embeddings)
    fail_field("ctx", "is larger than the model's context (" + std::to_string(model.config.max_position_embeddings) + ")");
  InferenceState state(model);
  SequenceScore total;
  const int64_t window = ctx - 1, windows = (int64_t(ids.size()) + window - 1) / window;
  for (int64_t w = 0; w < windows; ++w) {
    std::vector<int> seq{bos};
    const int64_t begin = w * window, end = std::min<int64_t>(begin + window, int64_t(ids.size()));
    seq.insert(seq.end(), ids.begin() + begin, ids.begin() + end);
    state.truncate(0);
    const SequenceScore s = score_sequence(model, state, seq);
    total.nll += s.nll;
    total.tokens += s.tokens;
    if (progress) progress(w + 1, windows, std::exp(total.nll / double(total.tokens)));
  }
  return total;
}

}  // namespace zephyr

// Log-likelihood of a token sequence under the model (perplexity, later evaluation).
#pragma once
#include <vector>

#include "model/inference.h"

namespace zephyr {

struct SequenceScore {
  double nll = 0;      // sum of -log p(ids[i] | ids[<i]) for i >= 1
  int64_t tokens = 0;  // ids.size() - 1
};

// Runs ids from the state's current position and scores every token after the first.
SequenceScore score_sequence(const Model& model, InferenceState& state, const std::vector<int>& ids);

// -log softmax(logits)[target], computed in double.
double token_nll(const float* logits, int64_t vocab, int target);

}  // namespace zephyr

// Log-likelihood of a token sequence under the model (perplexity, later evaluation).
#pragma once
#include <functional>
#include <vector>

#include "model/inference.h"

namespace zephyr {

struct SequenceScore {
  double nll = 0;      // sum of -log p(ids[i] | ids[<i]) for i >= 1
  int64_t tokens = 0;  // ids.size() - 1
};

// Runs ids from the state's current position and scores every token after the first.
SequenceScore score_sequence(const Model& model, InferenceState& state, const std::vector<int>& ids);

// Perplexity of a long text as llama.cpp's perplexity tool scores it: the ids (without BOS) cut
// into windows of ctx-1 tokens, each scored from a fresh cache after a BOS, every token counted.
// progress(window, windows, running perplexity) after each window, when given.
SequenceScore score_windows(const Model& model, const std::vector<int>& ids, int bos, int64_t ctx,
                            const std::function<void(int64_t, int64_t, double)>& progress = nullptr);

// -log softmax(logits)[target], computed in double.
double token_nll(const float* logits, int64_t vocab, int target);

}  // namespace zephyr

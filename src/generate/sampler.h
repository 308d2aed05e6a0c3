// Choosing the next token from logits with transformers' processors, in its order: repetition
// penalty, then temperature, top-k, top-p, min-p, then a seeded draw (or argmax when greedy).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/rng.h"

namespace zephyr {

struct SamplingParams {
  double temperature = 0.7;  // 0: greedy
  int64_t top_k = 50;        // 0: off
  double top_p = 0.95;       // 1: off
  double min_p = 0.0;        // 0: off
  double repetition_penalty = 1.0;  // 1: off
  uint64_t seed = 0;

  bool greedy() const { return temperature <= 0; }
  // An Error whose field() names the setting (temperature, top_k, top_p, min_p,
  // repetition_penalty) when a value is out of range.
  void validate() const;
};

// Each processor rewrites logits in place; removed tokens become -inf (as transformers'
// filter_value), and at least one token always survives.
void apply_repetition_penalty(std::span<float> logits, std::span<const int> history, double penalty);
void apply_temperature(std::span<float> logits, double temperature);
void apply_top_k(std::span<float> logits, int64_t k);
void apply_top_p(std::span<float> logits, double p);
void apply_min_p(std::span<float> logits, double min_p);

// The log-probability of a chosen token and of the most likely ones, under the distribution the
// sampler drew from after the repetition penalty (and a structured-output mask), before
// temperature, top-k, top-p and min-p: the model's own distribution, as OpenAI reports it.
struct TokenLogprob {
  int id = -1;
  double logprob = 0;
  std::vector<std::pair<int, double>> top;  // most likely first (ties: lower id first)
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}
  // Picks a token; `logits` is used as scratch. `history`: prompt and generated ids so far.
  // With `lp`, also its log-probability and the `top` most likely tokens'.
  int sample(std::span<float> logits, std::span<const int> history, TokenLogprob* lp = nullptr, int top = 0);
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  Rng rng_;
  std::vector<float> probs_, kept_;
  std::vector<int> alive_;  // the ids still finite after top-k
};

}  // namespace zephyr

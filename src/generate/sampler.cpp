#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <unordered_set>

#include "core/error.h"

namespace zephyr {

void SamplingParams::validate() const {
  if (!(temperature >= 0) || !std::isfinite(temperature)) fail_field("temperature", "must be >= 0, got " + std::to_string(temperature));
  if (top_k < 0) fail_field("top_k", "must be >= 0 (0 turns it off), got " + std::to_string(top_k));
  if (!(top_p > 0 && top_p <= 1)) fail_field("top_p", "must be in (0, 1], got " + std::to_string(top_p));
  if (!(min_p >= 0 && min_p <= 1)) fail_field("min_p", "must be in [0, 1], got " + std::to_string(min_p));
  if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty))
    fail_field("repetition_penalty", "must be > 0, got " + std::to_string(repetition_penalty));
}

void apply_repetition_penalty(std::span<float> logits, std::span<const int> history, double penalty) {
  if (penalty == 1.0) return;
  const float p = float(penalty);
  std::unordered_set<int> seen;
  for (int id : history) {
    if (id < 0 || size_t(id) >= logits.size() || !seen.insert(id).second) continue;
    float& s = logits[size_t(id)];
    s = s < 0 ? s * p : s / p;
  }
}

void apply_temperature(std::span<float> logits, double temperature) {
  if (temperature == 1.0) return;
  const float t = float(temperature);
  for (auto& s : logits) s /= t;
}

void apply_top_k(std::span<float> logits, int64_t k) {
  if (k <= 0 || size_t(k) >= logits.size()) return;
  // The k-th largest value: a min-heap of the k largest seen, one pass (most values fall below its
  // top and cost one comparison); a copy and nth_element of a 49k vocabulary took ~5x longer.
  float kth;
  if (k <= 1024) {
    std::vector<float> heap(logits.begin(), logits.begin() + k);
    std::make_heap(heap.begin(), heap.end(), std::greater<float>());
    for (size_t i = size_t(k); i < logits.size(); ++i)
      if (logits[i] > heap.front()) {
        std::pop_heap(heap.begin(), heap.end(), std::greater<float>());
        heap.back() = logits[i];
        std::push_heap(heap.begin(), heap.end(), std::greater<float>());
      }
    kth = heap.front();
  } else {
    std::vector<float> sorted(logits.begin(), logits.end());
    std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
    kth = sorted[size_t(k - 1)];
  }
  for (auto& s : logits)
    if (s < kth) s = -INFINITY;  // ties with the k-th value stay, as torch.topk's threshold keeps them
}

namespace {
// Softmax over the finite logits in fp32, like torch.softmax on the filtered scores.
void softmax_f32(std::span<const float> logits, std::vector<float>& probs) {
  probs.resize(logits.size());
  float m = -INFINITY;
  for (float s : logits) m = std::max(m, s);
  float sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) sum += probs[i] = std::exp(logits[i] - m);
  for (auto& p : probs) p /= sum;
}
}  // namespace

namespace {
// The finite logits' ids in ascending order, ties in id order (what a stable sort gives): an LSD
// radix sort on the float bits, 4 passes of 8 bits. A comparison stable_sort of a 49k vocabulary
// took ~3 ms a token, a quarter of SmolLM2's decode whenever top-k was off.
void ascending_order(std::span<const float> x, std::vector<int>& order) {
  std::vector<uint32_t> keys, keys2;
  std::vector<int> ids2;
  order.clear();
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(x[i] > -INFINITY)) continue;
    uint32_t b;
    std::memcpy(&b, &x[i], 4);
    if (b == 0x80000000u) b = 0;  // -0 ties with +0, as in a comparison sort
    keys.push_back(b & 0x80000000u ? ~b : b | 0x80000000u);  // unsigned order = float order
    order.push_back(int(i));
  }
  keys2.resize(keys.size());
  ids2.resize(order.size());
  for (int shift = 0; shift < 32; shift += 8) {
    size_t count[257] = {};
    for (uint32_t k : keys) ++count[((k >> shift) & 0xFF) + 1];
    for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
    for (size_t i = 0; i < keys.size(); ++i) {
      const size_t at = count[(keys[i] >> shift) & 0xFF]++;
      keys2[at] = keys[i];
      ids2[at] = order[i];
    }
    keys.swap(keys2);
    order.swap(ids2);
  }
}
}  // namespace

void apply_top_p(std::span<float> logits, double p) {
  if (p >= 1.0) return;
  std::vector<int> order;
  ascending_order(logits, order);
  std::vector<float> finite(order.size()), probs;
  for (size_t i = 0; i < order.size(); ++i) finite[i] = logits[size_t(order[i])];
  softmax_f32(finite, probs);
  // Ascending cumulative mass; a token goes while the mass up to and including it is <= 1 - p.
  const float limit = float(1.0 - p);
  float cum = 0;
  for (size_t i = 0; i + 1 < order.size(); ++i) {  // the most likely token always stays
    cum += probs[i];
    if (cum <= limit) logits[size_t(order[i])] = -INFINITY;
  }
}

void apply_min_p(std::span<float> logits, double min_p) {
  if (min_p <= 0) return;
  std::vector<float> probs;
  softmax_f32(logits, probs);
  const size_t top = size_t(std::max_element(probs.begin(), probs.end()) - probs.begin());
  const float threshold = float(min_p) * probs[top];
  for (size_t i = 0; i < logits.size(); ++i)
    if (i != top && probs[i] < threshold) logits[i] = -INFINITY;
}

namespace {

// log Σ exp(x) over the logits, in double.
double log_sum_exp(std::span<const float> x) {
  double m = -INFINITY, sum = 0;
  for (float v : x) m = std::max(m, double(v));
  if (std::isinf(m)) return m;
  for (float v : x) sum += std::exp(double(v) - m);
  return m + std::log(sum);
}

// The k largest logits' ids, largest first, ties by lower id.
std::vector<int> top_ids(std::span<const float> x, int k) {
  std::vector<int> ids(x.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int(i);
  const auto before = [&](int a, int b) { return x[size_t(a)] > x[size_t(b)] || (x[size_t(a)] == x[size_t(b)] && a < b); };
  k = std::min<int>(k, int(ids.size()));
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), before);
  ids.resize(size_t(k));
  return ids;
}

// NaN or +Inf (a masked token is -Inf) comes from weights or a config that overflow: any token
// drawn from them would be garbage. Compared as bits, without branches, so the loop vectorises
// (~7 us for 49k logits at -O3, against ~40 us for a float compare with an early exit).
bool has_nan_or_inf(std::span<const float> logits) {
  uint32_t bad = 0;
  for (float x : logits) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    bad |= uint32_t((u & 0x7fffffffu) > 0x7f800000u) | uint32_t(u == 0x7f800000u);
  }
  return bad != 0;
}

}  // namespace

int Sampler::sample(std::span<float> logits, std::span<const int> history, TokenLogprob* lp, int top) {
  if (has_nan_or_inf(logits))
    throw Error("the model computed non-finite logits (NaN or infinity): its weights or config.json hold values "
                "that overflow");
  apply_repetition_penalty(logits, history, params_.repetition_penalty);
  double lse = 0;
  if (lp) {
    lse = log_sum_exp(logits);
    lp->top.clear();
    for (int id : top_ids(logits, top)) lp->top.emplace_back(id, double(logits[size_t(id)]) - lse);
    if (!params_.greedy()) kept_.assign(logits.begin(), logits.end());  // the draw rewrites them
  }
  const auto record = [&](int id) {
    if (lp) lp->id = id, lp->logprob = double(params_.greedy() ? logits[size_t(id)] : kept_[size_t(id)]) - lse;
    return id;
  };
  if (params_.greedy())  // first index of the maximum, as torch.argmax
    return record(int(std::max_element(logits.begin(), logits.end()) - logits.begin()));
  apply_temperature(logits, params_.temperature);
  apply_top_k(logits, params_.top_k);
  apply_top_p(logits, params_.top_p);
  apply_min_p(logits, params_.min_p);
  // Draw from the softmax in double: walk the ids in order until the cumulative mass passes u.
  double m = -INFINITY, sum = 0;
  for (float s : logits) m = std::max(m, double(s));
  probs_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i)  // exp(-inf) is 0: the filtered tokens skip the call
    sum += probs_[i] = logits[i] > -INFINITY ? float(std::exp(double(logits[i]) - m)) : 0.0f;
  const double u = rng_.uniform() * sum;
  double cum = 0;
  int last = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (probs_[i] <= 0) continue;
    cum += probs_[i];
    last = int(i);
    if (u < cum) return record(int(i));
  }
  return record(last);
}

}  // namespace zephyr

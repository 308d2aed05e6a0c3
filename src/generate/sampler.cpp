#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <unordered_set>

#include "core/error.h"
#include "core/target_clones.h"

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

// The passes over the whole vocabulary are built for AVX-512 and AVX2 too (element by element, so
// the same results at any width).
ZEPHYR_CLONES_V4_V3 void apply_temperature(std::span<float> logits, double temperature) {
  if (temperature == 1.0) return;
  const float t = float(temperature);
  for (auto& s : logits) s /= t;
}

ZEPHYR_CLONES_V4_V3 void apply_top_k(std::span<float> logits, int64_t k) {
  if (k <= 0 || size_t(k) >= logits.size()) return;
  // The k-th largest value: a min-heap of the k largest seen, one pass (most values fall below its
  // top and cost one comparison); a copy and nth_element of a 49k vocabulary took ~5x longer.
  float kth;
  if (k <= 1024) {
    std::vector<float> heap(logits.begin(), logits.begin() + k);
    std::make_heap(heap.begin(), heap.end(), std::greater<float>());
    const auto offer = [&](float v) {
      if (v > heap.front()) {
        std::pop_heap(heap.begin(), heap.end(), std::greater<float>());
        heap.back() = v;
        std::push_heap(heap.begin(), heap.end(), std::greater<float>());
      }
    };
    size_t i = size_t(k);
    for (; i + 16 <= logits.size(); i += 16) {  // blocks of 16 first: most fall wholly below the heap's top
      const float top = heap.front();
      const float* b = logits.data() + i;
      int above = 0;
      for (int j = 0; j < 16; ++j) above |= b[j] > top;  // branchless: vectorises
      if (above)
        for (size_t j = i; j < i + 16; ++j) offer(logits[j]);
    }
    for (; i < logits.size(); ++i) offer(logits[i]);
    kth = heap.front();
  } else {
    std::vector<float> sorted(logits.begin(), logits.end());
    std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
    kth = sorted[size_t(k - 1)];
  }
  for (auto& s : logits) s = s < kth ? -INFINITY : s;  // ties with the k-th value stay, as torch.topk's threshold keeps them
}

namespace {

// The ids of the finite logits, in id order. After top-k they are ~k of a 49k vocabulary, so the
// filters after it and the draw walk these instead of the whole vocabulary: each pass over it
// cost ~15-50 us (a max in double is a serial chain), ~190 us a token for SmolLM2 in all.
ZEPHYR_CLONES_V4_V3 void finite_ids(std::span<const float> x, std::vector<int>& ids) {
  ids.clear();
  size_t i = 0;
  for (; i + 16 <= x.size(); i += 16) {
    const float* b = x.data() + i;
    int any = 0;
    for (int j = 0; j < 16; ++j) any |= b[j] > -INFINITY;  // branchless: vectorises
    if (any)
      for (size_t j = i; j < i + 16; ++j)
        if (x[j] > -INFINITY) ids.push_back(int(j));
  }
  for (; i < x.size(); ++i)
    if (x[i] > -INFINITY) ids.push_back(int(i));
}

// The ids' logits in ascending order, ties in id order (what a stable sort gives), of those among
// `ids` (in id order) still finite: an LSD radix sort on the float bits, 4 passes of 8 bits. A
// comparison stable_sort of a 49k vocabulary took ~3 ms a token, a quarter of SmolLM2's decode
// whenever top-k was off.
void ascending_order(std::span<const float> x, std::span<const int> ids, std::vector<int>& order) {
  std::vector<uint32_t> keys, keys2;
  std::vector<int> ids2;
  order.clear();
  for (int i : ids) {
    if (!(x[size_t(i)] > -INFINITY)) continue;
    uint32_t b;
    std::memcpy(&b, &x[size_t(i)], 4);
    if (b == 0x80000000u) b = 0;  // -0 ties with +0, as in a comparison sort
    keys.push_back(b & 0x80000000u ? ~b : b | 0x80000000u);  // unsigned order = float order
    order.push_back(i);
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

// top-p over the finite logits among ids (in id order; the others are -inf already).
void top_p_over(std::span<float> logits, std::span<const int> ids, double p) {
  if (p >= 1.0) return;
  std::vector<int> order;
  ascending_order(logits, ids, order);
  // Softmax of the kept logits in fp32, like torch.softmax on the filtered scores.
  float m = -INFINITY;
  for (int id : order) m = std::max(m, logits[size_t(id)]);
  std::vector<float> probs(order.size());
  float sum = 0;
  for (size_t i = 0; i < order.size(); ++i) sum += probs[i] = std::exp(logits[size_t(order[i])] - m);
  for (auto& q : probs) q /= sum;
  // Ascending cumulative mass; a token goes while the mass up to and including it is <= 1 - p.
  const float limit = float(1.0 - p);
  float cum = 0;
  for (size_t i = 0; i + 1 < order.size(); ++i) {  // the most likely token always stays
    cum += probs[i];
    if (cum <= limit) logits[size_t(order[i])] = -INFINITY;
  }
}

// min-p over the finite logits among ids (in id order), the softmax as torch.softmax over every
// logit in fp32 (the -inf ones add exact zeros, so summing only the finite in id order is the same).
void min_p_over(std::span<float> logits, std::span<const int> ids, double min_p) {
  if (min_p <= 0 || ids.empty()) return;  // nothing finite: nothing to filter (and no top)
  float m = -INFINITY;
  for (int id : ids) m = std::max(m, logits[size_t(id)]);
  std::vector<float> probs(ids.size());
  float sum = 0;
  for (size_t i = 0; i < ids.size(); ++i)
    if (logits[size_t(ids[i])] > -INFINITY) sum += probs[i] = std::exp(logits[size_t(ids[i])] - m);
  size_t top = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    probs[i] /= sum;
    if (probs[i] > probs[top]) top = i;  // the first of the largest, as max_element
  }
  const float threshold = float(min_p) * probs[top];
  for (size_t i = 0; i < ids.size(); ++i)
    if (i != top && probs[i] < threshold) logits[size_t(ids[i])] = -INFINITY;
}

}  // namespace

void apply_top_p(std::span<float> logits, double p) {
  std::vector<int> ids;
  finite_ids(logits, ids);
  top_p_over(logits, ids, p);
}

void apply_min_p(std::span<float> logits, double min_p) {
  std::vector<int> ids;
  finite_ids(logits, ids);
  min_p_over(logits, ids, min_p);
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
ZEPHYR_CLONES_V4_V3 bool has_nan_or_inf(std::span<const float> logits) {
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
  finite_ids(logits, alive_);
  top_p_over(logits, alive_, params_.top_p);
  min_p_over(logits, alive_, params_.min_p);
  // Draw from the softmax in double: walk the ids in order until the cumulative mass passes u
  // (the filtered tokens add nothing, so only the finite ones are walked).
  double m = -INFINITY, sum = 0;
  for (int id : alive_) m = std::max(m, double(logits[size_t(id)]));
  probs_.resize(alive_.size());
  for (size_t i = 0; i < alive_.size(); ++i) {
    const float l = logits[size_t(alive_[i])];
    sum += probs_[i] = l > -INFINITY ? float(std::exp(double(l) - m)) : 0.0f;
  }
  const double u = rng_.uniform() * sum;
  double cum = 0;
  int last = 0;
  for (size_t i = 0; i < alive_.size(); ++i) {
    if (probs_[i] <= 0) continue;
    cum += probs_[i];
    last = alive_[i];
    if (u < cum) return record(alive_[i]);
  }
  return record(last);
}

}  // namespace zephyr

// The sampling processors keep exactly the tokens transformers' warpers keep on known
// distributions, and the draw follows the distribution and the seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "generate/generator.h"
#include "generate/sampler.h"
#include "core/error.h"
#include "core/rng.h"

using namespace zephyr;

namespace {

// Logits whose softmax is exactly `probs`.
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(float(std::log(p)));
  return l;
}

// top-p as transformers writes it: a stable ascending sort of the finite logits, their fp32
// softmax, and the tail whose cumulative mass stays within 1 - p removed (never the last token).
void plain_top_p(std::vector<float>& l, double p) {
  std::vector<int> order;
  for (size_t i = 0; i < l.size(); ++i)
    if (l[i] > -INFINITY) order.push_back(int(i));
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l[size_t(a)] < l[size_t(b)]; });
  float m = -INFINITY, sum = 0, cum = 0;
  for (int i : order) m = std::max(m, l[size_t(i)]);
  std::vector<float> pr;
  for (int i : order) pr.push_back(std::exp(l[size_t(i)] - m)), sum += pr.back();
  for (float& x : pr) x /= sum;
  for (size_t i = 0; i + 1 < order.size(); ++i)
    if ((cum += pr[i]) <= float(1.0 - p)) l[size_t(order[i])] = -INFINITY;
}

std::vector<int> kept(const std::vector<float>& logits) {
  std::vector<int> k;
  for (size_t i = 0; i < logits.size(); ++i)
    if (logits[i] > -INFINITY) k.push_back(int(i));
  return k;
}

}  // namespace

TEST(Sampler, TopKKeepsTheKLargestAndTheirTies) {
  std::vector<float> l{1, 3, 2, 0};
  apply_top_k(l, 2);
  EXPECT_EQ(kept(l), (std::vector<int>{1, 2}));
  std::vector<float> ties{1, 3, 3, 0, 3};
  apply_top_k(ties, 2);  // torch: scores < topk(...)[-1] are removed, so every 3 stays
  EXPECT_EQ(kept(ties), (std::vector<int>{1, 2, 4}));
  std::vector<float> off{1, 2};
  apply_top_k(off, 0);
  EXPECT_EQ(kept(off).size(), 2u);
}

TEST(Sampler, TopPRemovesTheTailWhoseMassStaysWithinOneMinusP) {
  const std::vector<double> probs{0.3, 0.05, 0.5, 0.15};
  auto l = logits_of(probs);
  apply_top_p(l, 0.8);  // ascending cumsum 0.05, 0.20, 0.50, 1.0; <= 0.2 goes
  EXPECT_EQ(kept(l), (std::vector<int>{0, 2}));
  l = logits_of(probs);
  apply_top_p(l, 0.81);  // 1 - p = 0.19: only the 0.05 token goes
  EXPECT_EQ(kept(l), (std::vector<int>{0, 2, 3}));
  l = logits_of(probs);
  apply_top_p(l, 0.01);  // the most likely token always stays
  EXPECT_EQ(kept(l), (std::vector<int>{2}));
  l = logits_of(probs);
  apply_top_p(l, 1.0);
  EXPECT_EQ(kept(l).size(), 4u);
}

TEST(Sampler, MinPScalesByTheTopProbability) {
  auto l = logits_of({0.3, 0.05, 0.5, 0.15});
  apply_min_p(l, 0.35);  // threshold 0.175
  EXPECT_EQ(kept(l), (std::vector<int>{0, 2}));
  l = logits_of({0.3, 0.05, 0.5, 0.15});
  apply_min_p(l, 0.05);  // threshold 0.025: all stay
  EXPECT_EQ(kept(l).size(), 4u);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeOnce) {
  std::vector<float> l{2, -2, 1, 4};
  const std::vector<int> history{0, 1, 1, 1};
  apply_repetition_penalty(l, history, 2.0);
  EXPECT_EQ(l, (std::vector<float>{1, -4, 1, 4}));
}

TEST(Sampler, ProcessorsChainInTransformersOrder) {
  // temperature 0.5 sharpens {0.3, 0.05, 0.5, 0.15} to p^2 normalised: 0.09/0.365=0.2466,
  // 0.0025/0.365, 0.25/0.365=0.6849, 0.0225/0.365=0.0616; top-p 0.9 then keeps {0, 2}
  // (ascending cumsum 0.0068, 0.0685, 0.3151 — the first two are <= 0.1).
  SamplingParams p;
  p.temperature = 0.5;
  p.top_k = 3;
  p.top_p = 0.9;
  p.seed = 1;
  Sampler s(p);
  for (int i = 0; i < 200; ++i) {
    auto l = logits_of({0.3, 0.05, 0.5, 0.15});
    const int t = s.sample(l, {});
    EXPECT_TRUE(t == 0 || t == 2) << t;
  }
}

TEST(Sampler, GreedyTakesTheFirstMaximum) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p);
  std::vector<float> l{0.5f, 2.0f, 2.0f, -1.0f};
  EXPECT_EQ(s.sample(l, {}), 1);
}

TEST(Sampler, RefusesNanAndInfinityButNotMaskedTokens) {
  for (double temperature : {0.0, 0.7}) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = 0;
    Sampler s(p);
    std::vector<float> masked = {-INFINITY, 1.0f, -INFINITY, 0.5f};
    const int id = s.sample(masked, {});
    EXPECT_TRUE(temperature == 0 ? id == 1 : id == 1 || id == 3) << id;
    for (float bad : {NAN, INFINITY}) {
      std::vector<float> logits = {0.1f, bad, 0.3f};
      EXPECT_THROW(s.sample(logits, {}), Error);
    }
  }
}

TEST(Sampler, DrawsFollowTheDistributionAndTheSeed) {
  SamplingParams p;
  p.temperature = 1;
  p.top_k = 0;
  p.top_p = 1;
  p.seed = 42;
  const std::vector<double> probs{0.1, 0.2, 0.3, 0.4};
  Sampler a(p), b(p);
  std::vector<int> counts(4, 0), seq_a, seq_b;
  const int n = 40000;
  for (int i = 0; i < n; ++i) {
    auto l1 = logits_of(probs), l2 = logits_of(probs);
    seq_a.push_back(a.sample(l1, {}));
    seq_b.push_back(b.sample(l2, {}));
    counts[size_t(seq_a.back())]++;
  }
  EXPECT_EQ(seq_a, seq_b);
  for (size_t i = 0; i < 4; ++i) {
    const double sd = std::sqrt(n * probs[i] * (1 - probs[i]));
    EXPECT_NEAR(counts[i], n * probs[i], 5 * sd) << "token " << i;
  }
  p.seed = 43;
  Sampler c(p);
  std::vector<int> seq_c;
  for (int i = 0; i < 100; ++i) {
    auto l = logits_of(probs);
    seq_c.push_back(c.sample(l, {}));
  }
  EXPECT_NE(seq_c, std::vector<int>(seq_a.begin(), seq_a.begin() + 100));
}

TEST(Sampler, RejectsOutOfRangeSettings) {
  SamplingParams p;
  p.top_p = 0;
  EXPECT_THROW(p.validate(), Error);
  p = {};
  p.temperature = -1;
  EXPECT_THROW(p.validate(), Error);
  p = {};
  p.top_k = -3;
  EXPECT_THROW(p.validate(), Error);
}

TEST(StopStrings, HoldsBackAPossibleStartAndCutsAtAMatch) {
  const std::vector<std::string> stops{"</s>", "User:"};
  EXPECT_EQ(stop_string_cut("Hello </", stops), (std::pair<size_t, bool>{6, false}));
  EXPECT_EQ(stop_string_cut("Hello Us", stops), (std::pair<size_t, bool>{6, false}));
  EXPECT_EQ(stop_string_cut("Hello User: hi", stops), (std::pair<size_t, bool>{6, true}));
  EXPECT_EQ(stop_string_cut("a</s>b User:", stops), (std::pair<size_t, bool>{1, true}));
  EXPECT_EQ(stop_string_cut("plain", stops), (std::pair<size_t, bool>{5, false}));
  EXPECT_EQ(stop_string_cut("plain", {}), (std::pair<size_t, bool>{5, false}));
}

// The radix-sorted top-p removes exactly what transformers' stable ascending sort removes, ties
// (and -0 against +0) included.
TEST(Sampler, TopPMatchesAStableSortWithTies) {
  Rng rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> l(size_t(50 + trial * 7));
    for (float& v : l) v = float(int(rng.normal() * 4)) / 2;  // many ties
    l[0] = -0.0f, l[1] = 0.0f, l[2] = -INFINITY;
    const double p = 0.05 + 0.9 * rng.uniform();
    std::vector<float> want = l;
    plain_top_p(want, p);
    apply_top_p(l, p);
    ASSERT_EQ(0, std::memcmp(l.data(), want.data(), l.size() * 4)) << "trial " << trial;
  }
}

// The sampler walks only the ids that survive top-k (and skips blocks of the vocabulary): its
// draws are those of the pipeline written plainly over the whole vocabulary, as transformers runs
// it, with the same seed — every setting on or off, ties, masked tokens, a 49k vocabulary.
TEST(Sampler, DrawsEqualThePlainPipelineOverTheWholeVocabulary) {
  Rng gen(5);
  for (int trial = 0; trial < 60; ++trial) {
    SamplingParams p;
    p.temperature = trial % 3 == 0 ? 1.0 : 0.3 + gen.uniform();
    p.top_k = std::vector<int64_t>{0, 1, 50, 2000}[size_t(trial % 4)];
    p.top_p = trial % 5 == 0 ? 1.0 : 0.5 + 0.5 * gen.uniform();
    p.min_p = trial % 2 == 0 ? 0.0 : 0.2 * gen.uniform();
    p.seed = uint64_t(trial);
    const size_t V = (trial % 2 ? 49152 : 1000) + size_t(trial);
    std::vector<float> logits(V);
    for (float& v : logits) v = trial % 3 == 1 ? float(int(gen.normal() * 6)) / 4 : float(gen.normal() * 3);  // ties
    for (size_t i = 0; i < V; i += 7) logits[i] = -INFINITY;  // a structured-output mask
    if (trial % 3 != 2) logits[V - 2] = logits[V - 3] = 10;  // likely tokens past the last block of 16
    Sampler sampler(p);
    Rng rng(p.seed);
    for (int draw = 0; draw < 5; ++draw) {
      std::vector<float> got = logits, l = logits;
      const int id = sampler.sample(got, {});
      for (float& s : l) s /= float(p.temperature);
      if (p.top_k > 0) {
        std::vector<float> sorted = l;
        std::sort(sorted.begin(), sorted.end(), std::greater<float>());
        const float kth = sorted[size_t(p.top_k - 1)];
        for (float& s : l)
          if (s < kth) s = -INFINITY;
      }
      if (p.top_p < 1) plain_top_p(l, p.top_p);
      if (p.min_p > 0) {
        float m = -INFINITY, sum = 0;
        for (float s : l) m = std::max(m, s);
        std::vector<float> pr(V);
        for (size_t i = 0; i < V; ++i) sum += pr[i] = std::exp(l[i] - m);
        for (float& x : pr) x /= sum;
        const size_t top = size_t(std::max_element(pr.begin(), pr.end()) - pr.begin());
        for (size_t i = 0; i < V; ++i)
          if (i != top && pr[i] < float(p.min_p) * pr[top]) l[i] = -INFINITY;
      }
      double m = -INFINITY, sum = 0, cum = 0;
      for (float s : l) m = std::max(m, double(s));
      std::vector<float> pr(V);
      for (size_t i = 0; i < V; ++i) sum += pr[i] = l[i] > -INFINITY ? float(std::exp(double(l[i]) - m)) : 0.0f;
      const double u = rng.uniform() * sum;
      int want = -1, last = 0;
      for (size_t i = 0; i < V && want < 0; ++i)
        if (pr[i] > 0) {
          cum += pr[i];
          last = int(i);
          if (u < cum) want = int(i);
        }
      if (want < 0) want = last;
      ASSERT_EQ(id, want) << "trial " << trial << " draw " << draw;
      ASSERT_EQ(0, std::memcmp(got.data(), l.data(), V * 4)) << "trial " << trial << ": the filtered logits";
    }
  }
}

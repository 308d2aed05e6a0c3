// Every op's backward against central finite differences of its forward: for a random output
// weighting r, the directional derivative of L = Σ r ⊙ f(x) along a random direction must equal
// <grad, direction> from the backward pass.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/gemm_bf16.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

using namespace zephyr;

namespace {

std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng.normal()) * scale;
  return v;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

// Checks d/dε L(x + ε d) at 0 against <grad, d>, for L given as a function of x.
void expect_directional(const std::function<double(const std::vector<float>&)>& L, std::vector<float> x,
                        const std::vector<float>& grad, uint64_t seed, const char* what, double eps = 1e-2,
                        double tol = 2e-3) {
  const auto d = randn(x.size(), seed);
  std::vector<float> xp = x, xm = x;
  for (size_t i = 0; i < x.size(); ++i) {
    xp[i] += float(eps) * d[i];
    xm[i] -= float(eps) * d[i];
  }
  const double numeric = (L(xp) - L(xm)) / (2 * eps), analytic = dot(grad, d);
  EXPECT_NEAR(numeric, analytic, tol * std::max(1.0, std::fabs(analytic))) << what;
}

}  // namespace

TEST(Backward, RmsNorm) {
  const int64_t n = 70, dim = 16;  // 3 chunks of rows in the backward, the last partial
  auto x = randn(n * dim, 1), w = randn(dim, 2), r = randn(n * dim, 3);
  std::vector<float> dx(x.size(), 0), dw(w.size(), 0), y(x.size());
  rmsnorm_backward(x.data(), w.data(), r.data(), n, dim, 1e-5, dx.data(), dw.data());
  auto L_x = [&](const std::vector<float>& xx) {
    rmsnorm_forward(xx.data(), w.data(), n, dim, 1e-5, y.data());
    return dot(y, r);
  };
  auto L_w = [&](const std::vector<float>& ww) {
    rmsnorm_forward(x.data(), ww.data(), n, dim, 1e-5, y.data());
    return dot(y, r);
  };
  expect_directional(L_x, x, dx, 4, "dx");
  expect_directional(L_w, w, dw, 5, "dw");
}

// bf16 training norms a layer's input straight into its packs, 16 rows at a time on any thread
// (rmsnorm_rows as pack_produced's producer): the packs equal those of the whole norm, and each
// row's values equal rmsnorm_forward's, for row counts off the 16-row groups.
TEST(RmsNorm, RowsNormedIntoPacksEqualTheWholeNormPacked) {
  if (!gemm_bf16_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  for (int64_t n : {1, 17, 70}) {
    const int64_t dim = 48, N = 5;
    auto x = randn(n * dim, 6, 3.0f), w = randn(dim, 7), z = randn(N * dim, 8), v = randn(N * n, 9);
    std::vector<float> y(x.size()), rows(x.size());
    rmsnorm_forward(x.data(), w.data(), n, dim, 1e-5, y.data());
    rmsnorm_rows(x.data(), w.data(), n, dim, 1e-5, rows.data());
    EXPECT_EQ(rows, y) << n;
    Bf16Rows a(n, dim), produced(n, dim);
    Bf16Panels t(dim, n), produced_t(dim, n);
    pack_with_transpose(y.data(), dim, a, t);
    auto norm_rows = [&](int64_t r0, int64_t r1, float* const* out) {
      rmsnorm_rows(x.data() + r0 * dim, w.data(), r1 - r0, dim, 1e-5, out[0]);
    };
    pack_produced(n, dim, norm_rows, {{&produced, nullptr, &produced_t}});
    const Bf16Panels pz(z.data(), dim, false, N, dim);
    const Bf16Rows rv(v.data(), n, false, N, n);
    std::vector<float> want(size_t(n * N)), got(want.size()), want_t(size_t(N * dim)), got_t(want_t.size());
    gemm_bf16(a, pz, want.data(), N, false);
    gemm_bf16(produced, pz, got.data(), N, false);
    gemm_bf16(rv, t, want_t.data(), dim, false);
    gemm_bf16(rv, produced_t, got_t.data(), dim, false);
    EXPECT_EQ(got, want) << n;
    EXPECT_EQ(got_t, want_t) << n;
  }
}

TEST(Backward, SwiGlu) {
  const int64_t n = 40;
  auto g = randn(n, 1, 2.0f), u = randn(n, 2), r = randn(n, 3);
  std::vector<float> dg(n), du(n), y(n);
  swiglu_backward(g.data(), u.data(), r.data(), n, dg.data(), du.data());
  expect_directional([&](const std::vector<float>& gg) { swiglu_forward(gg.data(), u.data(), n, y.data()); return dot(y, r); },
                     g, dg, 4, "dgate");
  expect_directional([&](const std::vector<float>& uu) { swiglu_forward(g.data(), uu.data(), n, y.data()); return dot(y, r); },
                     u, du, 5, "dup");
}

TEST(Backward, RopeInverseIsTheBackward) {
  const int64_t n = 5, heads = 2, hd = 8;
  const std::vector<int64_t> pos{0, 1, 2, 0, 7};
  auto x = randn(n * heads * hd, 1), r = randn(x.size(), 2);
  std::vector<float> dx = r;
  rope_apply(dx.data(), n, heads, hd, pos.data(), 10000.0, true);
  expect_directional(
      [&](const std::vector<float>& xx) {
        auto y = xx;
        rope_apply(y.data(), n, heads, hd, pos.data(), 10000.0, false);
        return dot(y, r);
      },
      x, dx, 3, "dx");
  // Forward then inverse is the identity.
  auto y = x;
  rope_apply(y.data(), n, heads, hd, pos.data(), 10000.0, false);
  rope_apply(y.data(), n, heads, hd, pos.data(), 10000.0, true);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i], 1e-5f);
}

// Training attention with packed segments starting at seg_starts: each segment's output equals the
// inference kernel run on that segment alone; gradients against directional finite differences,
// and from the probabilities the forward pass kept the same as from recomputed ones.
void check_train_attention(int64_t n, const AttentionShape& s, const std::vector<int64_t>& seg_starts) {
  const int64_t qd = s.heads * s.head_dim, kvd = s.kv_heads * s.head_dim;
  std::vector<int64_t> seg(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t b : seg_starts)
      if (b <= t) seg[size_t(t)] = b;
  auto q = randn(n * qd, 1), k = randn(n * kvd, 2), v = randn(n * kvd, 3), r = randn(n * qd, 4);
  std::vector<float> out(q.size()), lse(size_t(n * s.heads));
  attention_train_forward(q.data(), k.data(), v.data(), n, seg.data(), s, false, out.data(), lse.data());
  for (size_t i = 0; i < seg_starts.size(); ++i) {
    const int64_t b = seg_starts[i], e = i + 1 < seg_starts.size() ? seg_starts[i + 1] : n;
    std::vector<float> out_inf(size_t((e - b) * qd));
    attention_forward(q.data() + b * qd, e - b, 0, k.data() + b * kvd, v.data() + b * kvd, s, KvLayout::token_major(s), out_inf.data());
    for (size_t j = 0; j < out_inf.size(); ++j) ASSERT_NEAR(out[size_t(b * qd) + j], out_inf[j], 1e-5f) << "n " << n << " segment " << i;
  }
  std::vector<float> dq(q.size(), 0), dk(k.size(), 0), dv(v.size(), 0);
  attention_backward(q.data(), k.data(), v.data(), out.data(), r.data(), lse.data(), n, seg.data(), s, false, dq.data(), dk.data(),
                     dv.data());
  auto L = [&](const std::vector<float>& qq, const std::vector<float>& kk, const std::vector<float>& vv) {
    std::vector<float> o(q.size()), l(lse.size());
    attention_train_forward(qq.data(), kk.data(), vv.data(), n, seg.data(), s, false, o.data(), l.data());
    return dot(o, r);
  };
  expect_directional([&](const std::vector<float>& x) { return L(x, k, v); }, q, dq, 5, "dq");
  expect_directional([&](const std::vector<float>& x) { return L(q, x, v); }, k, dk, 6, "dk");
  expect_directional([&](const std::vector<float>& x) { return L(q, k, x); }, v, dv, 7, "dv");
  // Kept probabilities (normalised by their sum where the recomputation subtracts lse; they agree
  // within 2e-7): in fp32 the recomputed probabilities' gradients within float rounding; in bf16
  // as close to fp32's as the recomputed ones (rounding dS to bf16 turns the probabilities' last
  // bits into ~2% of the gradients, whose terms cancel).
  auto kept_close = [&](bool bf16, double tol) {
    AttentionProbs probs;
    std::vector<float> o(q.size()), l(lse.size()), kq(q.size(), 0), kk(k.size(), 0), kv(v.size(), 0);
    attention_train_forward(q.data(), k.data(), v.data(), n, seg.data(), s, bf16, o.data(), l.data(), &probs);
    ASSERT_FALSE(probs.empty());
    attention_backward(q.data(), k.data(), v.data(), o.data(), r.data(), l.data(), n, seg.data(), s, bf16, kq.data(), kk.data(), kv.data(),
                       &probs);
    for (auto [a, b, what] : {std::tuple{&kq, &dq, "dq"}, {&kk, &dk, "dk"}, {&kv, &dv, "dv"}}) {
      double err = 0, norm = 0;
      for (size_t i = 0; i < a->size(); ++i) err = std::max(err, double(std::fabs((*a)[i] - (*b)[i]))), norm = std::max(norm, double(std::fabs((*b)[i])));
      EXPECT_LT(err, tol * norm) << what << " bf16 " << bf16 << " n " << n;
    }
  };
  kept_close(false, 1e-5);
  // With bf16 matmul inputs the same within bf16 rounding (8 significant bits).
  if (!gemm_bf16_available()) return;
  std::vector<float> out16(q.size()), lse16(lse.size()), dq16(q.size(), 0), dk16(k.size(), 0), dv16(v.size(), 0);
  attention_train_forward(q.data(), k.data(), v.data(), n, seg.data(), s, true, out16.data(), lse16.data());
  attention_backward(q.data(), k.data(), v.data(), out16.data(), r.data(), lse16.data(), n, seg.data(), s, true, dq16.data(),
                     dk16.data(), dv16.data());
  auto close = [&](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
    double err = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) err = std::max(err, double(std::fabs(a[i] - b[i]))), norm = std::max(norm, double(std::fabs(b[i])));
    EXPECT_LT(err, 0.02 * norm) << what << " n " << n;
    EXPECT_GT(err, 0.0) << what << ": the bf16 path was not taken";
  };
  close(out16, out, "out");
  close(lse16, lse, "lse");
  close(dq16, dq, "dq");
  close(dk16, dk, "dk");
  close(dv16, dv, "dv");
  kept_close(true, 0.02);
}

TEST(Backward, AttentionWithWindowSegmentsAndGqa) {
  // 4 query heads share 2 KV heads; window 4; two packed segments.
  check_train_attention(9, AttentionShape{4, 2, 8, 4}, {0, 5});
  // Several 64-query blocks: a segment starting inside a block, a window shorter than a block.
  check_train_attention(150, AttentionShape{4, 2, 8, 40}, {0, 70});
  check_train_attention(150, AttentionShape{2, 1, 8, 0}, {0});
}

TEST(Attention, PrefillBlocksMatchTokenByTokenDecodeInEitherCacheLayout) {
  // Many tokens at once (GEMMs over blocks of 64 queries) against one token at a time over the
  // same cache: with earlier cached positions, a sliding window and grouped KV heads; the cache
  // token-major and head-major (the inference cache: capacity 200 > its 187 tokens) give the same bits.
  const AttentionShape s{6, 2, 16, 100};
  const int64_t pos0 = 37, n = 150, L = pos0 + n, cap = 200;
  auto q = randn(n * 6 * 16, 11), k = randn(L * 2 * 16, 12), v = randn(L * 2 * 16, 13);
  std::vector<float> kh(size_t(2 * cap * 16), NAN), vh(kh.size(), NAN);  // unused rows NaN: never read
  for (int64_t j = 0; j < L; ++j)
    for (int64_t g = 0; g < 2; ++g)
      for (int64_t e = 0; e < 16; ++e) {
        kh[size_t((g * cap + j) * 16 + e)] = k[size_t((j * 2 + g) * 16 + e)];
        vh[size_t((g * cap + j) * 16 + e)] = v[size_t((j * 2 + g) * 16 + e)];
      }
  const KvLayout tm = KvLayout::token_major(s), hm = KvLayout::head_major(s, cap);
  std::vector<float> many(q.size()), one(q.size()), many_h(q.size()), one_h(q.size());
  attention_forward(q.data(), n, pos0, k.data(), v.data(), s, tm, many.data());
  attention_forward(q.data(), n, pos0, kh.data(), vh.data(), s, hm, many_h.data());
  for (int64_t t = 0; t < n; ++t) {
    attention_forward(q.data() + t * 6 * 16, 1, pos0 + t, k.data(), v.data(), s, tm, one.data() + t * 6 * 16);
    attention_forward(q.data() + t * 6 * 16, 1, pos0 + t, kh.data(), vh.data(), s, hm, one_h.data() + t * 6 * 16);
  }
  for (size_t i = 0; i < q.size(); ++i) ASSERT_NEAR(many[i], one[i], 1e-5f) << "element " << i;
  EXPECT_EQ(0, std::memcmp(many.data(), many_h.data(), many.size() * 4));
  EXPECT_EQ(0, std::memcmp(one.data(), one_h.data(), one.size() * 4));
}

TEST(Attention, DecodeQueryMatchesADoubleReference) {
  // attention_query's AVX-512 kernel (16 keys' scores per transposing sum, then a tail) for every
  // head_dim it takes and one it does not (24), key counts around the 16-key blocks, with a window.
  for (int64_t hd : {24, 32, 64, 80, 96, 128})
    for (int64_t window : {0, 7}) {
      const AttentionShape s{6, 2, hd, window};
      const int64_t L = 50, kvd = 2 * hd;
      auto q = randn(hd, 21), k = randn(L * kvd, 22, 2.0f), v = randn(L * kvd, 23);
      std::vector<float> scores, out(static_cast<size_t>(hd));
      for (int64_t pos : {0, 1, 14, 15, 16, 17, 31, 32, 33, 49})
        for (int64_t g : {0, 1}) {
          attention_query(q.data(), pos, k.data(), v.data(), g, s, KvLayout::token_major(s), scores, out.data());
          const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
          std::vector<double> p;
          double m = -1e300, z = 0;
          for (int64_t j = lo; j <= pos; ++j) {
            double d = 0;
            for (int64_t e = 0; e < hd; ++e) d += double(q[size_t(e)]) * k[size_t(j * kvd + g * hd + e)];
            p.push_back(d / std::sqrt(double(hd)));
            m = std::max(m, p.back());
          }
          for (double& x : p) z += x = std::exp(x - m);
          for (int64_t e = 0; e < hd; ++e) {
            double o = 0;
            for (int64_t j = lo; j <= pos; ++j) o += p[size_t(j - lo)] / z * v[size_t(j * kvd + g * hd + e)];
            ASSERT_NEAR(out[size_t(e)], o, 2e-6) << "head_dim " << hd << " window " << window << " pos " << pos << " g " << g;
          }
        }
    }
}

TEST(Backward, CrossEntropy) {
  const int64_t n = 4, V = 11;
  auto logits = randn(n * V, 1, 2.0f);
  const std::vector<int> target{3, kIgnoreIndex, 0, 10};
  std::vector<float> d(logits.size());
  const double loss = cross_entropy_forward_backward(logits.data(), n, V, target.data(), 1.0f, d.data());
  for (int64_t v = 0; v < V; ++v) EXPECT_EQ(d[size_t(V + v)], 0.0f);  // ignored row
  double expect = 0;
  for (int64_t i : {0, 2, 3}) {
    double z = 0;
    for (int64_t v = 0; v < V; ++v) z += std::exp(double(logits[size_t(i * V + v)]));
    expect += std::log(z) - logits[size_t(i * V + target[size_t(i)])];
  }
  EXPECT_NEAR(loss, expect, 1e-6);
  // In place (the trainer passes one buffer): the same loss and gradient.
  auto inplace = logits;
  EXPECT_NEAR(cross_entropy_forward_backward(inplace.data(), n, V, target.data(), 1.0f, inplace.data()), expect, 1e-6);
  for (size_t i = 0; i < d.size(); ++i) EXPECT_EQ(inplace[i], d[i]) << i;
  std::vector<float> scratch(logits.size());
  expect_directional(
      [&](const std::vector<float>& l) { return cross_entropy_forward_backward(l.data(), n, V, target.data(), 1.0f, scratch.data()); },
      logits, d, 2, "dlogits");
}

TEST(Backward, Matmul) {
  const int64_t n = 6, in = 10, out = 7;
  auto x = randn(n * in, 1), w = randn(out * in, 2), r = randn(n * out, 3);
  std::vector<float> dx(x.size(), 0), dw(w.size(), 0), y(size_t(n * out));
  matmul_backward(x.data(), n, Matrix{DType::F32, out, in, w.data()}, r.data(), dx.data(), dw.data());
  expect_directional([&](const std::vector<float>& xx) { matmul(xx.data(), n, Matrix{DType::F32, out, in, w.data()}, y.data()); return dot(y, r); },
                     x, dx, 4, "dx");
  expect_directional([&](const std::vector<float>& ww) { matmul(x.data(), n, Matrix{DType::F32, out, in, ww.data()}, y.data()); return dot(y, r); },
                     w, dw, 5, "dw");
}

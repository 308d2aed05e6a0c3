// Gradient checkpointing recomputes each layer in the backward pass with the same operations, so
// its gradients equal those of the pass that keeps every activation, bit for bit; packing keeps
// conversations apart exactly as if each had its own row.
#include <gtest/gtest.h>

#include "core/rng.h"
#include <algorithm>
#include <cmath>

#include "kernels/cross_entropy.h"
#include "kernels/dropout.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_f32.h"
#include "model/training.h"
#include "train/optimizer.h"
#include "train/sft_data.h"

using namespace zephyr;

namespace {

TrainableModel random_model(bool tied = false) {
  ModelConfig c;
  c.tie_word_embeddings = tied;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 40;
  c.sliding_window = 6;
  TrainableModel m(c);
  Rng rng(11);
  for (size_t i = 0; i < m.params().size(); ++i) {
    const ParamInfo& p = m.params()[i];
    const bool norm = p.name.find("norm") != std::string::npos;
    for (size_t j = 0; j < p.numel; ++j) m.weights()[p.offset + j] = norm ? 1.0f + 0.1f * float(rng.normal()) : 0.1f * float(rng.normal());
  }
  return m;
}

TokenizedRow random_row(size_t n, uint64_t seed) {
  Rng rng(seed);
  TokenizedRow r;
  for (size_t i = 0; i < n; ++i) {
    r.input_ids.push_back(int(rng.next() % 40));
    r.labels.push_back(i < 2 ? kIgnoreIndex : r.input_ids.back());
  }
  return r;
}

}  // namespace

TEST(Training, CheckpointingGivesIdenticalGradients) {
  TrainableModel m = random_model();
  const TokenBatch b = make_batch({random_row(13, 1), random_row(9, 2)}, 0);
  const int64_t targets = count_targets(b);
  // bf16 too: there the backward pass reads inputs packed by the forward pass or by the recomputation.
  for (const bool bf16 : {false, true}) {
    if (bf16 && !gemm_bf16_available()) continue;
    m.zero_grads();
    const LossSum full = forward_backward(m, b, 1.0f / float(targets), false, bf16);
    const Buffer g_full = m.grads();
    m.zero_grads();
    const LossSum ckpt = forward_backward(m, b, 1.0f / float(targets), true, bf16);
    EXPECT_EQ(full.nll, ckpt.nll);
    EXPECT_EQ(g_full, m.grads()) << "bf16 " << bf16;
    EXPECT_EQ(forward_loss(m, b, bf16).nll, full.nll);
  }
}

TEST(Training, PackedRowsEqualSeparateRows) {
  TrainableModel m = random_model();
  const TokenizedRow a = random_row(7, 3), c = random_row(10, 4);
  TokenizedRow a0 = a, c0 = c;
  a0.labels[0] = c0.labels[0] = kIgnoreIndex;  // packing never learns a conversation's first token
  const TokenBatch separate = make_batch({a0, c0}, 0);
  const auto packs = pack_rows({a, c}, 32);
  ASSERT_EQ(packs.size(), 1u);
  const TokenBatch packed = make_batch(packs, 0);
  m.zero_grads();
  const LossSum ls = forward_backward(m, separate, 1.0f);
  const Buffer g = m.grads();
  m.zero_grads();
  const LossSum lp = forward_backward(m, packed, 1.0f);
  EXPECT_EQ(ls.targets, lp.targets);
  EXPECT_NEAR(ls.nll, lp.nll, 1e-4 * ls.nll);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    worst = std::max(worst, double(std::fabs(g[i] - m.grads()[i])));
    scale = std::max(scale, double(std::fabs(g[i])));
  }
  EXPECT_LT(worst, 1e-4 * scale);
}

// A batch's rows run through each layer together: one product over all their tokens where the GEMM
// computes each row the same way whatever rows are beside it (bf16, and fp32 on gemm_f32), else
// (fp32 on BLAS, as on CPUs without AVX-512) the backward products only, the forward ones a row at
// a time. Every row's loss must be the one it has alone, bit for bit (attention, RoPE and the loss
// stay per row), and the gradients the sum of the rows' own up to summation order. Rows of other
// lengths, one of them packed with two conversations, one of 3 tokens (on BLAS: a GEMV alone, an
// SGEMM in the chunk), and per-row scales given after the forward passes.
TEST(Training, ChunkedRowsEqualRowsRunAlone) {
  TrainableModel m = random_model();
  const auto packed = pack_rows({random_row(6, 5), random_row(9, 6)}, 32);
  ASSERT_EQ(packed.size(), 1u);
  const std::vector<TokenizedRow> rows = {random_row(13, 1), packed[0], random_row(3, 3), random_row(9, 2)};
  const std::vector<float> scales = {0.5f, 1.7f, 1.1f, 0.9f};
  const bool own_f32 = gemm_f32_available();
  for (int run = 0; run < 6; ++run) {
    const bool bf16 = run < 2, deferred = run % 2, blas = run >= 4;
    if (bf16 && !gemm_bf16_available()) continue;
    set_gemm_f32_enabled(!blas);
    SCOPED_TRACE(bf16 ? "bf16" : blas || !own_f32 ? "fp32 on BLAS" : "fp32 on gemm_f32");
    std::vector<float> g_alone;
    std::vector<double> nll_alone;
    for (size_t r = 0; r < rows.size(); ++r) {
      const TokenBatch one = make_batch({rows[r]}, 0);
      m.zero_grads();
      const RowScalesFromLosses one_scale = [&](const LossSum&) { return std::vector<float>{scales[r]}; };
      const LossSum l = deferred ? forward_backward_deferred(m, one, 0.3f, false, bf16, one_scale)
                                 : forward_backward(m, one, 0.3f, false, bf16);
      nll_alone.push_back(l.nll);
      const Buffer g = m.grads();
      g_alone.resize(g.size(), 0.0f);
      for (size_t i = 0; i < g.size(); ++i) g_alone[i] += g[i];
    }
    const TokenBatch all = make_batch(rows, 0);
    const RowScalesFromLosses all_scales = [&](const LossSum&) { return scales; };
    m.zero_grads();
    const LossSum l = deferred ? forward_backward_deferred(m, all, 0.3f, false, bf16, all_scales)
                               : forward_backward(m, all, 0.3f, false, bf16);
    for (size_t r = 0; r < rows.size(); ++r)
      EXPECT_EQ(l.row_nll[r], nll_alone[r]) << "row " << r << " bf16 " << bf16 << " deferred " << deferred;
    const Buffer g = m.grads();
    double diff = 0, norm = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      diff = std::max(diff, double(std::fabs(g[i] - g_alone[i])));
      norm = std::max(norm, double(std::fabs(g_alone[i])));
    }
    EXPECT_LT(diff, 1e-5 * norm) << "bf16 " << bf16 << " deferred " << deferred;
  }
  set_gemm_f32_enabled(true);
}

TEST(Training, Bf16MatmulsStayCloseToFp32) {
  if (!gemm_bf16_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  TrainableModel m = random_model();
  const TokenBatch b = make_batch({random_row(13, 1), random_row(9, 2)}, 0);
  // A unit scale, another (the lm_head's packed gradient takes it on its small operands), and
  // per-row scales given after the forward passes (DPO's deferred rows).
  const RowScalesFromLosses row_scales = [](const LossSum&) { return std::vector<float>{0.5f, 1.7f}; };
  for (int config = 0; config < 3; ++config) {
    auto run = [&](bool bf16) {
      m.zero_grads();
      if (config == 2) return forward_backward_deferred(m, b, 0.3f, false, bf16, row_scales);
      return forward_backward(m, b, config == 0 ? 1.0f : 0.37f, false, bf16);
    };
    const LossSum f32 = run(false);
    const Buffer g = m.grads();
    const LossSum bf16 = run(true);
    EXPECT_NEAR(bf16.nll, f32.nll, 1e-2 * f32.nll);  // bf16 inputs: ~3 significant digits per product
    double diff = 0, norm = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      diff += double(g[i] - m.grads()[i]) * (g[i] - m.grads()[i]);
      norm += double(g[i]) * g[i];
    }
    EXPECT_LT(std::sqrt(diff / norm), 2e-2) << "config " << config;
    EXPECT_GT(std::sqrt(diff / norm), 0.0);  // the bf16 path really ran
  }
}

// The optimizer packs each weight for the next bf16 pass as it updates it, a 16-row group at a
// time: the packs must hold what packing the updated weights whole gives (rows past a weight's
// end, up to its last 32-row panel, as zeros), and the next pass must run on them.
TEST(Training, OptimizerPacksTheWeightsItUpdates) {
  if (!gemm_bf16_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  TrainableModel m = random_model();  // rows 40 (lm_head), 48 (gate, up), 32, 16: whole and partial panels
  const TokenBatch b = make_batch({random_row(13, 1), random_row(9, 2)}, 0);
  m.zero_grads();
  forward_backward(m, b, 0.05f, false, true);
  AdamW opt(m);
  opt.step(m, AdamWConfig{1e-2}, 1e-2, 1.0, true);
  const auto packs = m.trained_bf16();
  ASSERT_TRUE(packs);
  for (size_t i : m.linears()) {
    const Matrix W = m.matrix(i);
    Bf16Panels w(W.rows, W.cols), wt(W.cols, W.rows);
    pack_with_transpose(static_cast<const float*>(W.data), W.cols, w, wt);
    auto same = [](const Bf16Panels& x, const Bf16Panels& y) {
      const size_t n = size_t((x.n() + 31) / 32 * 32 * ((x.k() + 1) / 2 * 2));
      return x.n() == y.n() && x.k() == y.k() && std::equal(x.data(), x.data() + n, y.data());
    };
    EXPECT_TRUE(same(packs->w[i], w)) << m.params()[i].name;
    EXPECT_TRUE(same(packs->wt[i], wt)) << m.params()[i].name;
  }
  // The next pass on the optimizer's packs gives what it gives packing the weights itself.
  const LossSum with = forward_backward(m, b, 0.05f, false, true);
  const Buffer g = m.grads();
  m.weights();  // an access that can change the weights drops the packs
  EXPECT_FALSE(m.trained_bf16());
  m.zero_grads();
  const LossSum without = forward_backward(m, b, 0.05f, false, true);
  EXPECT_EQ(with.nll, without.nll);
  EXPECT_EQ(g, m.grads());
}

// After an optimizer step the gradients are released, not cleared: the next micro-batches (two
// here, so the second adds to the first) must give the gradients they give after zero_grads, in
// fp32 and bf16, with the embedding tied to the lm_head (whose gradient the head's product stores
// and the embedding's scatter then adds to) and without.
TEST(Training, ReleasedGradientsCountAsZero) {
  for (bool tied : {false, true})
    for (bool bf16 : {false, true}) {
      if (bf16 && !gemm_bf16_available()) continue;
      TrainableModel m = random_model(tied);
      const TokenBatch b1 = make_batch({random_row(13, 1), random_row(9, 2)}, 0), b2 = make_batch({random_row(11, 3)}, 0);
      m.zero_grads();
      forward_backward(m, b1, 0.05f, false, bf16);
      AdamW opt(m);
      opt.step(m, AdamWConfig{1e-2}, 1e-2, 1.0, bf16);  // the last gradients are left in memory
      forward_backward(m, b1, 0.05f, false, bf16);
      forward_backward(m, b2, 0.05f, false, bf16);
      const Buffer released = m.grads();
      m.zero_grads();
      forward_backward(m, b1, 0.05f, false, bf16);
      forward_backward(m, b2, 0.05f, false, bf16);
      EXPECT_EQ(released, m.grads()) << "tied " << tied << " bf16 " << bf16;
      // and the sum of each micro-batch's own (the second added to the first, not stored over it)
      m.zero_grads();
      forward_backward(m, b1, 0.05f, false, bf16);
      const Buffer g1 = m.grads();
      m.zero_grads();
      forward_backward(m, b2, 0.05f, false, bf16);
      for (size_t j = 0; j < g1.size(); ++j) ASSERT_NEAR(released[j], g1[j] + m.grads()[j], 1e-6) << j;
      opt.step(m, AdamWConfig{1e-2}, 1e-2, 1.0, bf16);
      const Buffer read = m.grads();  // released ones read as zeros
      EXPECT_TRUE(std::all_of(read.begin(), read.end(), [](float x) { return x == 0.0f; }));
    }
}

// The embedding's gradient is written row by row and its rows are tracked: clearing it zeroes
// those rows alone and the optimizer skips reading the others. Two steps (the second clearing the
// first's rows) must leave the weights and moments the untracked path leaves, bit for bit.
TEST(Training, TrackedEmbeddingRowsStepAsTheWholeGradient) {
  for (bool bf16 : {false, true}) {
    if (bf16 && !gemm_bf16_available()) continue;
    const TokenBatch b1 = make_batch({random_row(13, 1), random_row(9, 2)}, 0), b2 = make_batch({random_row(11, 3)}, 0);
    auto train = [&](bool tracked) {
      TrainableModel m = random_model();
      AdamW opt(m);
      m.zero_grads();
      for (const TokenBatch* b : {&b1, &b2}) {
        forward_backward(m, *b, 0.05f, false, bf16);
        EXPECT_TRUE(m.embedding_grad_nonzero_rows() != nullptr);
        if (!tracked) m.grads();  // code that may write any element: rows no longer tracked
        EXPECT_EQ(m.embedding_grad_nonzero_rows() != nullptr, tracked);
        opt.step(m, AdamWConfig{1e-2}, 1e-2, 0.7, bf16);
      }
      return std::make_tuple(m.weights(), opt.exp_avg(), opt.exp_avg_sq(), m.read_grads());
    };
    const auto [w1, m1, v1, g1] = train(true);
    const auto [w0, m0, v0, g0] = train(false);
    EXPECT_EQ(w1, w0) << "bf16 " << bf16;
    EXPECT_EQ(m1, m0) << "bf16 " << bf16;
    EXPECT_EQ(v1, v0) << "bf16 " << bf16;
    EXPECT_TRUE(std::all_of(g1.begin(), g1.end(), [](float x) { return x == 0.0f; }));
  }
}

// The vectorised loops give each element the mask keep() defines, from any first element and
// length; about p of the elements are dropped, and kept ones scaled.
TEST(Dropout, MasksAreKeepsAtAnyOffsetAndDropAboutP) {
  const DropoutMask mask(0x1234abcdull, 0.1);
  const size_t n = 100003;
  std::vector<float> x(n), out(n), dx(n), dxd(n);
  Rng rng(5);
  for (size_t j = 0; j < n; ++j) x[j] = float(rng.normal()), dx[j] = float(rng.normal()), dxd[j] = float(rng.normal());
  size_t dropped = 0;
  for (size_t j0 : {size_t(0), size_t(1), size_t(7), size_t(30)}) {
    const size_t len = n - j0 - j0 % 5;
    dropout_apply(mask, j0, len, x.data(), out.data());
    std::vector<float> d = dx;
    dropout_add_backward(mask, j0, len, dxd.data(), d.data());
    for (size_t j = 0; j < len; ++j) {
      const bool keep = mask.keep(j0 + j);
      ASSERT_EQ(out[j], keep ? x[j] * mask.scale : 0.0f) << "element " << j0 + j;
      ASSERT_EQ(d[j], keep ? dx[j] + dxd[j] * mask.scale : dx[j]) << "element " << j0 + j;
      if (j0 == 0) dropped += !keep;
    }
  }
  EXPECT_NEAR(double(dropped) / double(n), 0.1, 0.005);
  EXPECT_FLOAT_EQ(mask.scale, float(1.0 / 0.9));
  EXPECT_EQ(DropoutMask(1, 0.0).threshold, 0u);  // p = 0 keeps everything
}

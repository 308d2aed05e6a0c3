#include "model/training.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace zephyr {

namespace {

// What the backward pass needs of one layer, for one row of T tokens.
struct LayerActs {
  std::vector<float> x_in, xn1, q, k, v, attn, lse, x_mid, xn2, gate, up, act;
};

void resize(std::vector<float>& v, int64_t n) { v.assign(size_t(n), 0.0f); }

// One layer's forward for T tokens: x (the residual stream) is updated in place and everything
// the backward pass needs is kept in a.
void layer_forward(const TrainableModel& m, const TrainableModel::Layer& P, std::vector<float>& x, LayerActs& a, int64_t T,
                   const int64_t* positions, const int64_t* seg_start) {
  const ModelConfig& c = m.config();
  const int64_t H = c.hidden_size, I = c.intermediate_size, qd = c.q_dim(), kvd = c.kv_dim();
  const AttentionShape shape{c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.sliding_window};
  a.x_in = x;
  resize(a.xn1, T * H);
  rmsnorm_forward(x.data(), m.weight(P.input_norm), T, H, c.rms_norm_eps, a.xn1.data());
  resize(a.q, T * qd);
  resize(a.k, T * kvd);
  resize(a.v, T * kvd);
  matmul(a.xn1.data(), T, m.matrix(P.q), a.q.data());
  matmul(a.xn1.data(), T, m.matrix(P.k), a.k.data());
  matmul(a.xn1.data(), T, m.matrix(P.v), a.v.data());
  rope_apply(a.q.data(), T, c.num_attention_heads, c.head_dim, positions, c.rope_theta, false);
  rope_apply(a.k.data(), T, c.num_key_value_heads, c.head_dim, positions, c.rope_theta, false);
  resize(a.attn, T * qd);
  resize(a.lse, T * c.num_attention_heads);
  attention_train_forward(a.q.data(), a.k.data(), a.v.data(), T, seg_start, shape, a.attn.data(), a.lse.data());
  std::vector<float> o(size_t(T * H));
  matmul(a.attn.data(), T, m.matrix(P.o), o.data());
  for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
  a.x_mid = x;
  resize(a.xn2, T * H);
  rmsnorm_forward(x.data(), m.weight(P.post_norm), T, H, c.rms_norm_eps, a.xn2.data());
  resize(a.gate, T * I);
  resize(a.up, T * I);
  resize(a.act, T * I);
  matmul(a.xn2.data(), T, m.matrix(P.gate), a.gate.data());
  matmul(a.xn2.data(), T, m.matrix(P.up), a.up.data());
  swiglu_forward(a.gate.data(), a.up.data(), T * I, a.act.data());
  matmul(a.act.data(), T, m.matrix(P.down), o.data());
  for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
}

// One row: forward, loss, backward; returns the summed loss over its targets. With
// checkpointing only each layer's input is kept and the rest is recomputed layer by layer in
// the backward pass (the same operations, so the gradients are identical).
double row_forward_backward(TrainableModel& m, const int* ids, const int* targets, int64_t T, const int64_t* positions,
                            const int64_t* seg_start, float grad_scale, bool backward, bool checkpointing) {
  const ModelConfig& c = m.config();
  const int64_t H = c.hidden_size, I = c.intermediate_size, qd = c.q_dim(), kvd = c.kv_dim(), V = c.vocab_size;
  const AttentionShape shape{c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.sliding_window};
  const size_t L = m.layers().size();
  std::vector<LayerActs> acts(L);
  std::vector<float> x(size_t(T * H));
  const Matrix embed = m.matrix(m.embed());
  for (int64_t t = 0; t < T; ++t) matrix_row(embed, ids[t], x.data() + t * H);

  for (size_t l = 0; l < L; ++l) {
    layer_forward(m, m.layers()[l], x, acts[l], T, positions, seg_start);
    if (checkpointing || !backward) {
      std::vector<float> keep = std::move(acts[l].x_in);
      acts[l] = LayerActs();
      if (backward) acts[l].x_in = std::move(keep);
    }
  }

  std::vector<float> xnf(size_t(T * H)), logits(size_t(T * V));
  rmsnorm_forward(x.data(), m.weight(m.final_norm()), T, H, c.rms_norm_eps, xnf.data());
  matmul(xnf.data(), T, m.matrix(m.lm_head()), logits.data());
  const double nll = cross_entropy_forward_backward(logits.data(), T, V, targets, grad_scale, logits.data());
  if (!backward) return nll;

  // Backward. dx: gradient w.r.t. the residual stream.
  std::vector<float> dxnf(size_t(T * H), 0.0f), dx(size_t(T * H), 0.0f);
  matmul_backward(xnf.data(), T, m.matrix(m.lm_head()), logits.data(), dxnf.data(), m.grad(m.lm_head()));
  rmsnorm_backward(x.data(), m.weight(m.final_norm()), dxnf.data(), T, H, c.rms_norm_eps, dx.data(), m.grad(m.final_norm()));
  std::vector<float> dact, dgate, dup, dxn, dattn, dq, dk, dv;
  for (size_t l = L; l-- > 0;) {
    const auto& P = m.layers()[l];
    LayerActs& a = acts[l];
    if (checkpointing) {
      std::vector<float> x_l = a.x_in;
      layer_forward(m, P, x_l, a, T, positions, seg_start);
    }
    // MLP: x_out = x_mid + down(swiglu(gate(xn2), up(xn2))).
    resize(dact, T * I);
    matmul_backward(a.act.data(), T, m.matrix(P.down), dx.data(), dact.data(), m.grad(P.down));
    resize(dgate, T * I);
    resize(dup, T * I);
    swiglu_backward(a.gate.data(), a.up.data(), dact.data(), T * I, dgate.data(), dup.data());
    resize(dxn, T * H);
    matmul_backward(a.xn2.data(), T, m.matrix(P.gate), dgate.data(), dxn.data(), m.grad(P.gate));
    matmul_backward(a.xn2.data(), T, m.matrix(P.up), dup.data(), dxn.data(), m.grad(P.up));
    rmsnorm_backward(a.x_mid.data(), m.weight(P.post_norm), dxn.data(), T, H, c.rms_norm_eps, dx.data(),
                     m.grad(P.post_norm));
    // Attention: x_mid = x_in + o(attention(rope(q(xn1)), rope(k(xn1)), v(xn1))).
    resize(dattn, T * qd);
    matmul_backward(a.attn.data(), T, m.matrix(P.o), dx.data(), dattn.data(), m.grad(P.o));
    resize(dq, T * qd);
    resize(dk, T * kvd);
    resize(dv, T * kvd);
    attention_backward(a.q.data(), a.k.data(), a.v.data(), a.attn.data(), dattn.data(), a.lse.data(), T, seg_start, shape,
                       dq.data(), dk.data(), dv.data());
    rope_apply(dq.data(), T, c.num_attention_heads, c.head_dim, positions, c.rope_theta, true);
    rope_apply(dk.data(), T, c.num_key_value_heads, c.head_dim, positions, c.rope_theta, true);
    // q and k were rotated in place; the projections saw xn1, which is what their weights need.
    resize(dxn, T * H);
    matmul_backward(a.xn1.data(), T, m.matrix(P.q), dq.data(), dxn.data(), m.grad(P.q));
    matmul_backward(a.xn1.data(), T, m.matrix(P.k), dk.data(), dxn.data(), m.grad(P.k));
    matmul_backward(a.xn1.data(), T, m.matrix(P.v), dv.data(), dxn.data(), m.grad(P.v));
    rmsnorm_backward(a.x_in.data(), m.weight(P.input_norm), dxn.data(), T, H, c.rms_norm_eps, dx.data(),
                     m.grad(P.input_norm));
    a = LayerActs();  // free as we go
  }
  float* dembed = m.grad(m.embed());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < H; ++j) dembed[ids[t] * H + j] += dx[size_t(t * H + j)];
  return nll;
}

}  // namespace

int64_t count_targets(const TokenBatch& b) {
  int64_t n = 0;
  for (int64_t r = 0; r < b.rows; ++r)
    for (int64_t t = 1; t < b.seq; ++t) n += b.labels[size_t(r * b.seq + t)] != kIgnoreIndex;
  return n;
}

namespace {

LossSum run_batch(TrainableModel& m, const TokenBatch& b, float grad_scale, bool backward, bool checkpointing,
                  const std::vector<float>& row_scales) {
  const int64_t V = m.config().vocab_size;
  if (int64_t(b.input_ids.size()) != b.rows * b.seq || int64_t(b.labels.size()) != b.rows * b.seq)
    fail("batch", "input_ids and labels must both hold rows x seq entries");
  if (!row_scales.empty() && int64_t(row_scales.size()) != b.rows) fail("batch", "one row scale per row expected");
  LossSum total;
  total.row_nll.assign(size_t(b.rows), 0.0);
  total.row_targets.assign(size_t(b.rows), 0);
  for (int64_t r = 0; r < b.rows; ++r) {
    const int* ids = b.input_ids.data() + r * b.seq;
    const int* labels = b.labels.data() + r * b.seq;
    for (int64_t t = 0; t < b.seq; ++t) {
      if (ids[t] < 0 || ids[t] >= V)
        fail("batch", "row " + std::to_string(r) + ": token id " + std::to_string(ids[t]) + " is outside the vocabulary");
      if (labels[t] != kIgnoreIndex && (labels[t] < 0 || labels[t] >= V))
        fail("batch", "row " + std::to_string(r) + ": label " + std::to_string(labels[t]) + " is outside the vocabulary");
    }
    // Tokens after the last labelled position cannot affect the loss (attention is causal).
    int64_t T = 0;
    for (int64_t t = 1; t < b.seq; ++t)
      if (labels[t] != kIgnoreIndex) T = t;
    if (T == 0) continue;
    std::vector<int> targets(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) targets[size_t(t)] = labels[t + 1];
    std::vector<int64_t> positions(static_cast<size_t>(T)), seg(static_cast<size_t>(T), 0);
    for (int64_t t = 0; t < T; ++t) {
      positions[size_t(t)] = b.positions.empty() ? t : b.positions[size_t(r * b.seq + t)];
      if (!b.seg_start.empty()) seg[size_t(t)] = b.seg_start[size_t(r * b.seq + t)];
    }
    const float scale = row_scales.empty() ? grad_scale : grad_scale * row_scales[size_t(r)];
    const double nll = row_forward_backward(m, ids, targets.data(), T, positions.data(), seg.data(), scale,
                                            backward && scale != 0.0f, checkpointing);
    int64_t n = 0;
    for (int t : targets) n += t != kIgnoreIndex;
    total.nll += nll;
    total.targets += n;
    total.row_nll[size_t(r)] = nll;
    total.row_targets[size_t(r)] = n;
  }
  return total;
}

}  // namespace

LossSum forward_backward(TrainableModel& m, const TokenBatch& b, float grad_scale, bool checkpointing,
                         const std::vector<float>& row_scales) {
  return run_batch(m, b, grad_scale, true, checkpointing, row_scales);
}

LossSum forward_loss(const TrainableModel& m, const TokenBatch& b) {
  // run_batch only writes gradients when asked to.
  return run_batch(const_cast<TrainableModel&>(m), b, 0.0f, false, false, {});
}

}  // namespace zephyr

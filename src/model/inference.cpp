#include "model/inference.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/attention.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace zephyr {

namespace {
// Prompt tokens per forward chunk: large enough for GEMM efficiency, small enough that the
// activations stay a few MB.
constexpr int64_t kChunk = 256;
}  // namespace

InferenceState::InferenceState(const Model& model) : config_(model.config) {
  k_.resize(size_t(config_.num_hidden_layers));
  v_.resize(size_t(config_.num_hidden_layers));
}

void InferenceState::reserve(int64_t tokens) {
  if (tokens <= capacity_) return;
  if (tokens > config_.max_position_embeddings)
    fail("", "context is full: " + std::to_string(tokens) + " tokens exceed max_position_embeddings = " +
                 std::to_string(config_.max_position_embeddings));
  int64_t cap = std::max<int64_t>(capacity_ * 2, 256);
  cap = std::min(std::max(cap, tokens), config_.max_position_embeddings);
  for (auto* cache : {&k_, &v_})
    for (auto& layer : *cache) layer.resize(size_t(cap * config_.kv_dim()));
  capacity_ = cap;
}

void InferenceState::run_layers(const Model& model, const int32_t* ids, int64_t n) {
  const ModelConfig& c = model.config;
  const ModelWeights& w = model.weights;
  const int64_t pos0 = size_, H = c.hidden_size, I = c.intermediate_size, qd = c.q_dim(), kvd = c.kv_dim();
  const int64_t qkv_dim = qd + 2 * kvd;
  x_.resize(size_t(n * H));
  xn_.resize(size_t(n * H));
  qkv_.resize(size_t(n * qkv_dim));
  q_.resize(size_t(n * qd));
  attn_.resize(size_t(n * qd));
  gate_up_.resize(size_t(n * 2 * I));
  act_.resize(size_t(n * I));
  for (int64_t t = 0; t < n; ++t) matrix_row(w.embed, ids[t], x_.data() + t * H);
  const AttentionShape shape{c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.sliding_window};
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& L = w.layers[l];
    float* kl = k_[l].data() + pos0 * kvd;
    float* vl = v_[l].data() + pos0 * kvd;
    rmsnorm_forward(x_.data(), L.input_norm.data(), n, H, c.rms_norm_eps, xn_.data());
    matmul(xn_.data(), n, L.qkv, qkv_.data());
    for (int64_t t = 0; t < n; ++t) {  // split each token's q|k|v row; k and v go to the cache
      const float* row = qkv_.data() + t * qkv_dim;
      std::memcpy(q_.data() + t * qd, row, size_t(qd) * sizeof(float));
      std::memcpy(kl + t * kvd, row + qd, size_t(kvd) * sizeof(float));
      std::memcpy(vl + t * kvd, row + qd + kvd, size_t(kvd) * sizeof(float));
    }
    rope_forward(q_.data(), n, c.num_attention_heads, c.head_dim, pos0, c.rope_theta);
    rope_forward(kl, n, c.num_key_value_heads, c.head_dim, pos0, c.rope_theta);
    attention_forward(q_.data(), n, pos0, k_[l].data(), v_[l].data(), shape, attn_.data());
    matmul(attn_.data(), n, L.o, xn_.data());
    for (int64_t i = 0; i < n * H; ++i) x_[size_t(i)] += xn_[size_t(i)];
    rmsnorm_forward(x_.data(), L.post_attention_norm.data(), n, H, c.rms_norm_eps, xn_.data());
    matmul(xn_.data(), n, L.gate_up, gate_up_.data());
    for (int64_t t = 0; t < n; ++t)
      swiglu_forward(gate_up_.data() + t * 2 * I, gate_up_.data() + t * 2 * I + I, I, act_.data() + t * I);
    matmul(act_.data(), n, L.down, xn_.data());
    for (int64_t i = 0; i < n * H; ++i) x_[size_t(i)] += xn_[size_t(i)];
  }
}

void forward(const Model& model, const int32_t* ids, int64_t n, InferenceState& st, float* logits, bool all_logits) {
  const ModelConfig& c = model.config;
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= c.vocab_size)
      fail("", "token id " + std::to_string(ids[i]) + " is outside the vocabulary (size " +
                   std::to_string(c.vocab_size) + ")");
  if (n <= 0) return;
  st.reserve(st.size_ + n);
  const int64_t H = c.hidden_size, V = c.vocab_size;
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t m = std::min(kChunk, n - start);
    st.run_layers(model, ids + start, m);
    st.size_ += m;
    const bool last = start + m == n;
    if (!all_logits && !last) continue;
    // Final norm and lm_head only where logits are wanted (the lm_head is ~1/30 of a 7B step).
    const int64_t first = all_logits ? 0 : m - 1, rows = m - first;
    rmsnorm_forward(st.x_.data() + first * H, model.weights.final_norm.data(), rows, H, c.rms_norm_eps,
                    st.xn_.data());
    matmul(st.xn_.data(), rows, model.weights.lm_head, logits + (all_logits ? start * V : 0));
  }
}

}  // namespace zephyr

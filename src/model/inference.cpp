#include "model/inference.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "model/served_adapter.h"

namespace zephyr {

namespace {
// Prompt tokens per forward chunk: large enough for GEMM efficiency, small enough that the
// activations stay a few MB.
constexpr int64_t kChunk = 256;

void check_ids(const ModelConfig& c, const int32_t* ids, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= c.vocab_size)
      fail("", "token id " + std::to_string(ids[i]) + " is outside the vocabulary (size " + std::to_string(c.vocab_size) + ")");
}

// The adapter a sequence runs through: the one it names, else the model's own (--lora), if any.
const ServedAdapter* adapter_of(const Model& model, const BatchSequence& b) { return b.adapter ? b.adapter : model.adapter.get(); }

// The logits rows' lm_head adapters (null: none) add their part.
void add_head_adapters(const std::vector<const ServedAdapter*>& adapters, const float* x, int64_t H, float* logits, int64_t V) {
  std::vector<LoraOutput> head(1);
  for (const ServedAdapter* a : adapters) head[0].rows.push_back(a ? &a->lm_head : nullptr);
  add_lora(head, x, H, logits, V);
}

}  // namespace

InferenceState::InferenceState(const Model& model) : config_(model.config) {
  k_.resize(size_t(config_.num_hidden_layers));
  v_.resize(size_t(config_.num_hidden_layers));
}

size_t InferenceState::shared_prefix(const std::vector<int>& prompt, const ServedAdapter* adapter) const {
  if (adapter != adapter_) return 0;
  const size_t n = std::min(ids_.size(), prompt.size());
  return size_t(std::mismatch(ids_.begin(), ids_.begin() + long(n), prompt.begin()).first - ids_.begin());
}

size_t InferenceState::reuse_prefix(const std::vector<int>& prompt, const ServedAdapter* adapter) {
  const size_t keep = std::min(shared_prefix(prompt, adapter), prompt.empty() ? 0 : prompt.size() - 1);
  truncate(int64_t(keep));
  return keep;
}

void InferenceState::use_adapter(const ServedAdapter* adapter) {
  if (size_ == 0) adapter_ = adapter;
  else if (adapter != adapter_)
    fail("", "a sequence's cached tokens ran with another adapter; start it afresh (truncate or reuse_prefix)");
}

void InferenceState::reserve(int64_t tokens) {
  if (tokens <= capacity_) return;
  if (tokens > config_.max_position_embeddings)
    fail("", "context is full: " + std::to_string(tokens) + " tokens exceed max_position_embeddings = " +
                 std::to_string(config_.max_position_embeddings));
  int64_t cap = std::max<int64_t>(capacity_ * 2, 256);
  cap = std::min(std::max(cap, tokens), config_.max_position_embeddings);
  // Head-major (KvLayout): each KV head's rows move to their place in the larger run.
  const int64_t hd = config_.head_dim;
  for (auto* cache : {&k_, &v_})
    for (auto& layer : *cache) {
      std::vector<float> grown(size_t(cap * config_.kv_dim()));
      for (int64_t g = 0; g < config_.num_key_value_heads; ++g)
        std::copy_n(layer.begin() + g * capacity_ * hd, size_ * hd, grown.begin() + g * cap * hd);
      layer.swap(grown);
    }
  capacity_ = cap;
}

// The layers over the new tokens of several sequences at once; leaves the last hidden states of
// all N tokens (sequence by sequence) in scratch.x. `rowwise`: the batch-invariant kernels.
struct BatchPass {
  struct Token {
    const InferenceState* st;
    int64_t pos, row;
  };

  static void run_layers(const Model& model, std::span<const BatchSequence> batch, ForwardScratch& s, bool rowwise) {
    const ModelConfig& c = model.config;
    const ModelWeights& w = model.weights;
    const int64_t H = c.hidden_size, I = c.intermediate_size, qd = c.q_dim(), kvd = c.kv_dim(), qkv_dim = qd + 2 * kvd;
    int64_t n = 0;
    for (const BatchSequence& b : batch) n += b.n;
    s.x.resize(size_t(n * H));
    s.xn.resize(size_t(n * H));
    s.qkv.resize(size_t(n * qkv_dim));
    s.q.resize(size_t(n * qd));
    s.attn.resize(size_t(n * qd));
    s.gate_up.resize(size_t(n * 2 * I));
    s.act.resize(size_t(n * I));
    int64_t row = 0;
    for (const BatchSequence& b : batch)
      for (int64_t t = 0; t < b.n; ++t, ++row) matrix_row(w.embed, b.ids[t], s.x.data() + row * H);
    // Every layer turns the same positions: their cosines and sines once for the pass (per layer
    // they were ~1% of a step decoding 8 sequences, on the calling thread).
    const int64_t half = c.head_dim / 2;
    std::vector<int64_t> positions;
    for (const BatchSequence& b : batch)
      for (int64_t t = 0; t < b.n; ++t) positions.push_back(b.state->size_ + t);
    s.rope_cos.resize(size_t(n * half));
    s.rope_sin.resize(size_t(n * half));
    parallel_for(size_t(n), 16, [&](size_t a, size_t e) {
      rope_angles(positions.data() + a, int64_t(e - a), c.head_dim, c.rope_theta, s.rope_cos.data() + a * size_t(half),
                  s.rope_sin.data() + a * size_t(half));
    });
    auto rope = [&](float* x, int64_t m, int64_t heads, int64_t row0) {  // rows [row0, row0 + m)
      parallel_for(size_t(m), 16, [&](size_t a, size_t e) {
        rope_rotate(x + int64_t(a) * heads * c.head_dim, int64_t(e - a), heads, c.head_dim,
                    s.rope_cos.data() + (row0 + int64_t(a)) * half, s.rope_sin.data() + (row0 + int64_t(a)) * half, false);
      });
    };
    std::vector<Token> tokens;  // rowwise attention: every token's sequence and position
    if (rowwise)
      for (const BatchSequence& b : batch)
        for (int64_t t = 0; t < b.n; ++t) tokens.push_back({b.state, b.state->size_ + t, int64_t(tokens.size())});
    auto mm = [&](const float* x, const auto& m, float* y) {
      if (rowwise) matmul_rowwise(x, n, m, y);
      else matmul(x, n, m, y);
    };
    // Each row's adapter, when any row has one: its modules add their part after the base's matmul.
    std::vector<const ServedAdapter*> adapters;
    if (std::any_of(batch.begin(), batch.end(), [&](const BatchSequence& b) { return adapter_of(model, b); }))
      for (const BatchSequence& b : batch) adapters.insert(adapters.end(), size_t(b.n), adapter_of(model, b));
    using Part = std::pair<LoraDelta ServedAdapter::Layer::*, int64_t>;  // a module and its columns' offset in y
    auto lora = [&](size_t l, const float* x, int64_t ldx, float* y, int64_t ldy, std::initializer_list<Part> parts) {
      if (adapters.empty()) return;
      std::vector<LoraOutput> outputs;
      for (const auto& [module, offset] : parts) {
        LoraOutput& o = outputs.emplace_back();
        o.offset = offset;
        for (const ServedAdapter* a : adapters) o.rows.push_back(a ? &(a->layers[l].*module) : nullptr);
      }
      add_lora(outputs, x, ldx, y, ldy);
    };
    const AttentionShape shape{c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.sliding_window};
    for (size_t l = 0; l < w.layers.size(); ++l) {
      const LayerWeights& L = w.layers[l];
      rmsnorm_forward(s.x.data(), L.input_norm.data(), n, H, c.rms_norm_eps, s.xn.data());
      mm(s.xn.data(), L.qkv, s.qkv.data());
      lora(l, s.xn.data(), H, s.qkv.data(), qkv_dim,
           {{&ServedAdapter::Layer::q, 0}, {&ServedAdapter::Layer::k, qd}, {&ServedAdapter::Layer::v, qd + kvd}});
      row = 0;
      for (const BatchSequence& b : batch) {  // split each token's q|k|v row; k and v go to its cache
        InferenceState& st = *b.state;
        const KvLayout kv = KvLayout::head_major(shape, st.capacity_);
        for (int64_t t = 0; t < b.n; ++t) {
          float* r = s.qkv.data() + (row + t) * qkv_dim;
          std::memcpy(s.q.data() + (row + t) * qd, r, size_t(qd) * sizeof(float));
          rope_rotate(r + qd, 1, c.num_key_value_heads, c.head_dim, s.rope_cos.data() + (row + t) * half,
                      s.rope_sin.data() + (row + t) * half, false);
          for (int64_t g = 0; g < c.num_key_value_heads; ++g) {
            const int64_t at = (st.size_ + t) * kv.row + g * kv.head;
            std::memcpy(st.k_[l].data() + at, r + qd + g * c.head_dim, size_t(c.head_dim) * sizeof(float));
            std::memcpy(st.v_[l].data() + at, r + qd + kvd + g * c.head_dim, size_t(c.head_dim) * sizeof(float));
          }
        }
        rope(s.q.data() + row * qd, b.n, c.num_attention_heads, row);
        if (!rowwise) attention_forward(s.q.data() + row * qd, b.n, st.size_, st.k_[l].data(), st.v_[l].data(), shape, kv,
                                        s.attn.data() + row * qd);
        row += b.n;
      }
      if (rowwise) attend_rowwise(tokens, l, shape, s);
      mm(s.attn.data(), L.o, s.xn.data());
      lora(l, s.attn.data(), qd, s.xn.data(), H, {{&ServedAdapter::Layer::o, 0}});
      for (int64_t i = 0; i < n * H; ++i) s.x[size_t(i)] += s.xn[size_t(i)];
      rmsnorm_forward(s.x.data(), L.post_attention_norm.data(), n, H, c.rms_norm_eps, s.xn.data());
      mm(s.xn.data(), L.gate_up, s.gate_up.data());
      lora(l, s.xn.data(), H, s.gate_up.data(), 2 * I, {{&ServedAdapter::Layer::gate, 0}, {&ServedAdapter::Layer::up, I}});
      parallel_for(size_t(n), 1, [&](size_t a, size_t e) {
        for (int64_t t = int64_t(a); t < int64_t(e); ++t)
          swiglu_forward(s.gate_up.data() + t * 2 * I, s.gate_up.data() + t * 2 * I + I, I, s.act.data() + t * I);
      });
      mm(s.act.data(), L.down, s.xn.data());
      lora(l, s.act.data(), I, s.xn.data(), H, {{&ServedAdapter::Layer::down, 0}});
      for (int64_t i = 0; i < n * H; ++i) s.x[size_t(i)] += s.xn[size_t(i)];
    }
  }

  // Every (token, head) of every sequence as one task list, each through attention_query.
  static void attend_rowwise(const std::vector<Token>& tokens, size_t l, const AttentionShape& shape, ForwardScratch& s) {
    const int64_t heads = shape.heads, hd = shape.head_dim, group = shape.heads / shape.kv_heads;
    parallel_for(tokens.size() * size_t(heads), 1, [&](size_t begin, size_t end) {
      std::vector<float> scores;
      for (size_t task = begin; task < end; ++task) {
        const Token& tk = tokens[task / size_t(heads)];
        const int64_t h = int64_t(task % size_t(heads));
        attention_query(s.q.data() + (tk.row * heads + h) * hd, tk.pos, tk.st->k_[l].data(), tk.st->v_[l].data(), h / group,
                        shape, KvLayout::head_major(shape, tk.st->capacity_), scores, s.attn.data() + (tk.row * heads + h) * hd);
      }
    });
  }
};

void forward(const Model& model, const int32_t* ids, int64_t n, InferenceState& st, float* logits, bool all_logits) {
  const ModelConfig& c = model.config;
  check_ids(c, ids, n);
  if (n <= 0) return;
  st.use_adapter(nullptr);
  st.reserve(st.size_ + n);
  const int64_t H = c.hidden_size, V = c.vocab_size;
  ForwardScratch& s = st.scratch_;
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t m = std::min(kChunk, n - start);
    const BatchSequence one{&st, ids + start, m, nullptr};
    BatchPass::run_layers(model, {&one, 1}, s, false);
    st.size_ += m;
    st.ids_.insert(st.ids_.end(), ids + start, ids + start + m);
    const bool last = start + m == n;
    if (!all_logits && !last) continue;
    // Final norm and lm_head only where logits are wanted (the lm_head is ~1/30 of a 7B step).
    const int64_t first = all_logits ? 0 : m - 1, rows = m - first;
    rmsnorm_forward(s.x.data() + first * H, model.weights.final_norm.data(), rows, H, c.rms_norm_eps, s.xn.data());
    matmul(s.xn.data(), rows, model.weights.lm_head, logits + (all_logits ? start * V : 0));
    if (model.adapter)
      add_head_adapters(std::vector<const ServedAdapter*>(size_t(rows), model.adapter.get()), s.xn.data(), H,
                        logits + (all_logits ? start * V : 0), V);
  }
}

void forward_batch(const Model& model, std::span<const BatchSequence> batch, ForwardScratch& s) {
  const ModelConfig& c = model.config;
  const int64_t H = c.hidden_size, V = c.vocab_size;
  for (const BatchSequence& b : batch) {
    check_ids(c, b.ids, b.n);
    if (b.n <= 0) fail("", "a sequence in the batch has no tokens");
    b.state->use_adapter(b.adapter);
    b.state->reserve(b.state->size_ + b.n);
  }
  BatchPass::run_layers(model, batch, s, true);
  // The last token of each sequence that wants logits, gathered, through the final norm and lm_head.
  s.last.clear();
  std::vector<const ServedAdapter*> adapters;  // each wanted row's
  int64_t row = 0, wanted = 0;
  for (const BatchSequence& b : batch) {
    row += b.n;
    if (b.logits) {
      s.last.insert(s.last.end(), s.x.begin() + (row - 1) * H, s.x.begin() + row * H), ++wanted;
      adapters.push_back(adapter_of(model, b));
    }
    b.state->size_ += b.n;
    b.state->ids_.insert(b.state->ids_.end(), b.ids, b.ids + b.n);
  }
  if (wanted == 0) return;
  s.logits.resize(size_t(wanted * V));
  rmsnorm_forward(s.last.data(), model.weights.final_norm.data(), wanted, H, c.rms_norm_eps, s.xn.data());
  matmul_rowwise(s.xn.data(), wanted, model.weights.lm_head, s.logits.data());
  add_head_adapters(adapters, s.xn.data(), H, s.logits.data(), V);
  int64_t i = 0;
  for (const BatchSequence& b : batch)
    if (b.logits) std::memcpy(b.logits, s.logits.data() + i++ * V, size_t(V) * sizeof(float));
}

}  // namespace zephyr

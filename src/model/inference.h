// The inference forward pass with a KV cache: a prompt goes through in chunks (GEMM), then one
// token per step (GEMV), exactly the network transformers' MistralForCausalLM computes. Several
// sequences can share one pass (forward_batch): the batched engine's step.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "model/weights.h"

namespace zephyr {

// Activations of one pass, reused across passes.
struct ForwardScratch {
  std::vector<float> x, xn, qkv, q, attn, gate_up, act;
  std::vector<float> last, logits;  // forward_batch: the rows that want logits, and theirs
  std::vector<float> rope_cos, rope_sin;  // [tokens, head_dim / 2]: the pass's rotary angles
};

struct BatchSequence;
struct ServedAdapter;

// Keys and values of every layer for the tokens seen so far, plus scratch buffers reused across
// steps. One per conversation.
class InferenceState {
 public:
  explicit InferenceState(const Model& model);

  int64_t size() const { return size_; }  // tokens in the cache
  const std::vector<int>& ids() const { return ids_; }  // those tokens
  // Forgets all tokens after the first n (n = 0: a fresh conversation).
  void truncate(int64_t n) {
    size_ = n < size_ ? n : size_;
    ids_.resize(size_t(size_));
  }
  // How many leading tokens of `prompt` the cache already holds, computed with `adapter` (none
  // when the cache was computed with another: its keys and values differ).
  size_t shared_prefix(const std::vector<int>& prompt, const ServedAdapter* adapter = nullptr) const;
  // Keeps the cached prefix of `prompt` (all but its last token at most, which must run again for
  // its logits) and forgets the rest; returns how many tokens were kept.
  size_t reuse_prefix(const std::vector<int>& prompt, const ServedAdapter* adapter = nullptr);

 private:
  friend void forward(const Model&, const int32_t*, int64_t, InferenceState&, float*, bool);
  friend struct BatchPass;
  friend void forward_batch(const Model&, std::span<const BatchSequence>, ForwardScratch&);
  void reserve(int64_t tokens);

  // The cache's tokens ran through the base with this adapter beside it (null: the base alone).
  void use_adapter(const ServedAdapter* adapter);

  const ModelConfig& config_;
  const ServedAdapter* adapter_ = nullptr;
  int64_t size_ = 0, capacity_ = 0;
  std::vector<int> ids_;
  std::vector<std::vector<float>> k_, v_;  // per layer: [kv_heads, capacity, head_dim] (KvLayout::head_major)
  ForwardScratch scratch_;
};

// Runs ids[0..n) at the positions after the cached ones and appends them to the cache.
// logits: [n, vocab] when all_logits, else [1, vocab] for the last token. ids are checked
// against the vocabulary; the cache may not grow past max_position_embeddings.
void forward(const Model& model, const int32_t* ids, int64_t n, InferenceState& state, float* logits,
             bool all_logits = false);

// One sequence's share of a batched pass: n new tokens appended to its own cache, and the
// logits of its last token ([vocab]) when `logits` is not null; through the base with `adapter`
// beside it when not null (the sequence's cache must hold no tokens run otherwise).
struct BatchSequence {
  InferenceState* state = nullptr;
  const int32_t* ids = nullptr;
  int64_t n = 0;
  float* logits = nullptr;
  const ServedAdapter* adapter = nullptr;
};

// Every sequence's tokens in one pass: each matmul reads the weights once for all of them,
// attention runs per sequence over its own cache. Batch-invariant: every row is computed as for
// a batch of one token (matmul_rowwise, attention_query, LoraDelta::add), so a sequence's logits
// are the same bits whatever shares the pass (other adapters included) and however its prompt was
// cut into passes.
void forward_batch(const Model& model, std::span<const BatchSequence> batch, ForwardScratch& scratch);

}  // namespace zephyr

// The inference forward pass with a KV cache: a prompt goes through in chunks (GEMM), then one
// token per step (GEMV), exactly the network transformers' MistralForCausalLM computes.
#pragma once
#include <cstdint>
#include <vector>

#include "model/weights.h"

namespace zephyr {

// Keys and values of every layer for the tokens seen so far, plus scratch buffers reused across
// steps. One per conversation.
class InferenceState {
 public:
  explicit InferenceState(const Model& model);

  int64_t size() const { return size_; }  // tokens in the cache
  // Forgets all tokens after the first n (n = 0: a fresh conversation).
  void truncate(int64_t n) { size_ = n < size_ ? n : size_; }

 private:
  friend void forward(const Model&, const int32_t*, int64_t, InferenceState&, float*, bool);
  void reserve(int64_t tokens);
  // Runs n tokens through every layer, appending their keys and values; leaves the last
  // hidden states in x_.
  void run_layers(const Model& model, const int32_t* ids, int64_t n);

  const ModelConfig& config_;
  int64_t size_ = 0, capacity_ = 0;
  std::vector<std::vector<float>> k_, v_;  // per layer: [capacity, kv_heads * head_dim]
  std::vector<float> x_, xn_, qkv_, q_, attn_, gate_up_, act_;
};

// Runs ids[0..n) at the positions after the cached ones and appends them to the cache.
// logits: [n, vocab] when all_logits, else [1, vocab] for the last token. ids are checked
// against the vocabulary; the cache may not grow past max_position_embeddings.
void forward(const Model& model, const int32_t* ids, int64_t n, InferenceState& state, float* logits,
             bool all_logits = false);

}  // namespace zephyr

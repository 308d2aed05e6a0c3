// Causal grouped-query attention over a KV cache, with transformers' sliding-window rule: the
// query at position p sees keys at positions j with p - window < j <= p.
#pragma once
#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "kernels/gemm_bf16.h"

namespace zephyr {

struct AttentionShape {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  int64_t window = 0;  // 0: no window
};

// Where key (and value) j of KV head g lies: at k + j·row + g·head. Training's k and v are
// [tokens, kv_heads, head_dim] (token_major); the inference cache is head-major (a head's keys one
// contiguous run, row = head_dim, head = capacity·head_dim): decoding 8 SmolLM2 sequences reads
// the cache from memory every step, and one head's rows strided by all heads' took ~1.3x as long
// to stream as a contiguous run.
struct KvLayout {
  int64_t row = 0, head = 0;
  static KvLayout token_major(const AttentionShape& s) { return {s.kv_heads * s.head_dim, s.head_dim}; }
  static KvLayout head_major(const AttentionShape& s, int64_t capacity) { return {s.head_dim, capacity * s.head_dim}; }
};

// q: [n, heads, head_dim] for positions pos0 .. pos0+n-1; k, v: the cache of pos0+n tokens in
// layout kv (these n tokens included); out: [n, heads, head_dim].
void attention_forward(const float* q, int64_t n, int64_t pos0, const float* k, const float* v, const AttentionShape& s,
                       const KvLayout& kv, float* out);

// One query head of one token at position pos: q [head_dim] against kv head g of the cache k, v
// (pos + 1 tokens in layout kv), out [head_dim]; `scores` is scratch. attention_forward runs
// this for fewer than 16 tokens; the batched engine runs it for every token, so a token's result
// never depends on how its prompt was cut into chunks or what else shares the step.
void attention_query(const float* q, int64_t pos, const float* k, const float* v, int64_t g, const AttentionShape& s,
                     const KvLayout& kv, std::vector<float>& scores, float* out);

// Training attention over one sequence of n tokens whose keys are the same tokens: q [n, heads,
// head_dim], k, v [n, kv_heads, head_dim]. seg_start[t] is the first token of t's packed segment
// (all 0 without packing): t sees keys j with max(seg_start[t], t - window + 1) <= j <= t.
// lse [n, heads] receives the log-sum-exp of each query's scaled scores for the backward pass.
// bf16: the matmuls take bf16-rounded inputs (fp32 accumulation), as in `bf16: true` training.
// probs, when given, keeps the probabilities for the backward pass.
struct AttentionProbs {
  // Per query head and block of queries, the keys the block sees: about heads x n² / 2 floats plus
  // a block's diagonal.
  Buffer p;
  bool empty() const { return p.empty(); }
};
void attention_train_forward(const float* q, const float* k, const float* v, int64_t n, const int64_t* seg_start,
                             const AttentionShape& s, bool bf16, float* out, float* lse, AttentionProbs* probs = nullptr);

// Adds the gradients of q, k, v (dq, dk, dv +=) given dout; reads the probabilities the forward
// pass kept (the same bf16 setting), or recomputes them from q, k and lse.
void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* dout,
                        const float* lse, int64_t n, const int64_t* seg_start, const AttentionShape& s, bool bf16,
                        float* dq, float* dk, float* dv, const AttentionProbs* probs = nullptr);

}  // namespace zephyr

// Causal grouped-query attention over a KV cache, with transformers' sliding-window rule: the
// query at position p sees keys at positions j with p - window < j <= p.
#pragma once
#include <cstdint>

namespace zephyr {

struct AttentionShape {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  int64_t window = 0;  // 0: no window
};

// q: [n, heads, head_dim] for positions pos0 .. pos0+n-1; k, v: [pos0+n, kv_heads, head_dim]
// (the cache, including these n tokens); out: [n, heads, head_dim].
void attention_forward(const float* q, int64_t n, int64_t pos0, const float* k, const float* v,
                       const AttentionShape& s, float* out);

}  // namespace zephyr

// Rotary position embeddings in HF's rotate-half convention: for each head, the pair
// (x[i], x[i + d/2]) turns by pos · theta^(-2i/d).
#pragma once
#include <cstdint>

namespace zephyr {

// Rotates x: [n, heads, head_dim] in place; token t sits at position pos0 + t.
void rope_forward(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t pos0, double theta);

}  // namespace zephyr

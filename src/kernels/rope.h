// Rotary position embeddings in HF's rotate-half convention: for each head, the pair
// (x[i], x[i + d/2]) turns by pos · theta^(-2i/d).
#pragma once
#include <cstdint>

namespace zephyr {

// Rotates x: [n, heads, head_dim] in place; token t sits at position pos0 + t.
void rope_forward(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t pos0, double theta);

// The same with one position per token (packed sequences restart at 0). inverse = true rotates
// back, which is also the backward pass (the rotation is orthogonal).
void rope_apply(float* x, int64_t n, int64_t heads, int64_t head_dim, const int64_t* positions, double theta,
                bool inverse);

}  // namespace zephyr

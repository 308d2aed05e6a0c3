// Rotary position embeddings in HF's rotate-half convention: for each head, the pair
// (x[i], x[i + d/2]) turns by pos · theta^(-2i/d).
#pragma once
#include <cstdint>
#include <vector>

namespace zephyr {

// Rotates x: [n, heads, head_dim] in place, token t at positions[t] (packed sequences restart at
// 0). inverse = true rotates back, which is also the backward pass (the rotation is orthogonal).
void rope_apply(float* x, int64_t n, int64_t heads, int64_t head_dim, const int64_t* positions, double theta,
                bool inverse);

// The cosines and sines of n tokens' angles ([n, head_dim / 2] each), for rotating several tensors
// at the same positions: a training row turns q and k, and their gradients, in every layer.
struct RopeTable {
  int64_t head_dim = 0;
  std::vector<float> cos, sin;
};
RopeTable rope_table(const int64_t* positions, int64_t n, int64_t head_dim, double theta);
// rope_apply with the table's angles (x: [n, heads, table.head_dim], n at most the table's tokens).
void rope_apply(float* x, int64_t n, int64_t heads, const RopeTable& table, bool inverse);

// rope_apply in two parts, for a decode step whose every layer turns the same positions: the
// cosines and sines of each token's angles ([n, head_dim / 2] each), then the rotation with them.
void rope_angles(const int64_t* positions, int64_t n, int64_t head_dim, double theta, float* cos, float* sin);
void rope_rotate(float* x, int64_t n, int64_t heads, int64_t head_dim, const float* cos, const float* sin, bool inverse);

}  // namespace zephyr

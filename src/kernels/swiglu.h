// The MLP's gate: out = silu(gate) * up, silu(g) = g / (1 + e^-g).
#pragma once
#include <cstdint>

namespace zephyr {

void swiglu_forward(const float* gate, const float* up, int64_t n, float* out);

// dgate = dout ⊙ up ⊙ silu'(gate), dup = dout ⊙ silu(gate), with
// silu'(g) = σ(g) (1 + g (1 - σ(g))). Overwrites dgate and dup.
void swiglu_backward(const float* gate, const float* up, const float* dout, int64_t n, float* dgate, float* dup);

// The same over n elements on the calling thread, element for element the same values: for code
// that packs the outputs a block at a time.
void swiglu_forward_serial(const float* gate, const float* up, int64_t n, float* out);
void swiglu_backward_serial(const float* gate, const float* up, const float* dout, int64_t n, float* dgate, float* dup);

}  // namespace zephyr

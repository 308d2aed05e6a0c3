// The MLP's gate: out = silu(gate) * up, silu(g) = g / (1 + e^-g).
#pragma once
#include <cstdint>

namespace zephyr {

void swiglu_forward(const float* gate, const float* up, int64_t n, float* out);

}  // namespace zephyr

#include "kernels/swiglu.h"

#include "core/parallel.h"
#include "core/target_clones.h"
#include "kernels/vec.h"

namespace zephyr {

// The loops compiled for AVX-512 / AVX2 too (as baseline x86-64 they ran 4 floats at a time), with
// no FMA contraction (CMakeLists.txt), so every version gives the same bits.
ZEPHYR_CLONES_V4_V3 void swiglu_forward_serial(const float* gate, const float* up, int64_t n, float* out) {
  vec::sigmoid(gate, out, n);
  for (int64_t i = 0; i < n; ++i) out[i] *= gate[i] * up[i];
}

ZEPHYR_CLONES_V4_V3 void swiglu_backward_serial(const float* gate, const float* up, const float* dout, int64_t n, float* dgate,
                                                float* dup) {
  vec::sigmoid(gate, dup, n);  // σ(g), read back before dup is written
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], s = dup[i];
    dup[i] = dout[i] * g * s;
    dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
  }
}

// Both run in chunks across threads with the vectorised sigmoid (libm's expf per element and one
// thread made them ~3% of a training step, with the other core idle).
void swiglu_forward(const float* gate, const float* up, int64_t n, float* out) {
  parallel_for_balanced(size_t(n), 4096, [&](size_t b, size_t e) { swiglu_forward_serial(gate + b, up + b, int64_t(e - b), out + b); });
}

void swiglu_backward(const float* gate, const float* up, const float* dout, int64_t n, float* dgate, float* dup) {
  parallel_for_balanced(size_t(n), 4096, [&](size_t b, size_t e) {
    swiglu_backward_serial(gate + b, up + b, dout + b, int64_t(e - b), dgate + b, dup + b);
  });
}

}  // namespace zephyr

#include "kernels/dropout.h"

#include <cmath>

#include "core/target_clones.h"

namespace zephyr {

DropoutMask::DropoutMask(uint64_t k, double p)
    : key(k), threshold(uint64_t(std::ldexp(p, 64))), scale(float(1.0 / (1.0 - p))) {}  // p < 1: below 2^64

// Compiled for AVX-512 / AVX2 too: as baseline x86-64 each element's hash was scalar 64-bit
// multiplies, and drawing the adapters' masks (forward, backward and the input gradient's) took
// ~13% of a 1B model's LoRA step. No FMA contraction in this file (CMakeLists.txt): the same
// bits in every version.
ZEPHYR_CLONES_V4_V3 void dropout_apply(const DropoutMask& mask, size_t j0, size_t n, const float* __restrict x,
                                       float* __restrict out) {
  const uint64_t key = mask.key + j0, threshold = mask.threshold;
  const float scale = mask.scale;
#pragma omp simd
  for (size_t j = 0; j < n; ++j) out[j] = splitmix64(key + j) >= threshold ? x[j] * scale : 0.0f;
}

ZEPHYR_CLONES_V4_V3 void dropout_add_backward(const DropoutMask& mask, size_t j0, size_t n, const float* __restrict dxd,
                                              float* __restrict dx) {
  const uint64_t key = mask.key + j0, threshold = mask.threshold;
  const float scale = mask.scale;
#pragma omp simd
  for (size_t j = 0; j < n; ++j) dx[j] = splitmix64(key + j) >= threshold ? dx[j] + dxd[j] * scale : dx[j];
}

}  // namespace zephyr

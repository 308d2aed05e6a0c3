// RMSNorm as transformers' MistralRMSNorm computes it in fp32: y = w * x / sqrt(mean(x²) + eps).
#pragma once
#include <cstdint>

namespace zephyr {

// x, y: [n, dim] (may alias); w: [dim].
void rmsnorm_forward(const float* x, const float* w, int64_t n, int64_t dim, double eps, float* y);

}  // namespace zephyr

// RMSNorm as transformers' MistralRMSNorm computes it in fp32: y = w * x / sqrt(mean(x²) + eps).
#pragma once
#include <cstdint>

namespace zephyr {

// x, y: [n, dim] (may alias); w: [dim].
void rmsnorm_forward(const float* x, const float* w, int64_t n, int64_t dim, double eps, float* y);
// The same on the calling thread alone (a producer of rows packed as they come: gemm_bf16.h).
void rmsnorm_rows(const float* x, const float* w, int64_t n, int64_t dim, double eps, float* y);

// Given dy, adds the gradients to dx (dx += ...) and dw (dw += ..., unless null: frozen). With r = 1/rms(x):
// dx = r * (w ⊙ dy) - x * r³/dim * Σ(w ⊙ dy ⊙ x),  dw = Σ_rows dy ⊙ x * r.
void rmsnorm_backward(const float* x, const float* w, const float* dy, int64_t n, int64_t dim, double eps, float* dx,
                      float* dw);

}  // namespace zephyr

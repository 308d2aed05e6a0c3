// Small fp32 vector primitives used inside the ops, compiled for AVX-512, AVX2 and plain x86-64
// and picked at load time (GCC target_clones), so one binary runs everywhere at full width.
#pragma once
#include <cstdint>

namespace zephyr::vec {

float dot(const float* a, const float* b, int64_t n);
// y += a * x
void axpy(float* y, float a, const float* x, int64_t n);
// y *= a
void scale(float* y, float a, int64_t n);
float sum_squares(const float* x, int64_t n);
float max(const float* x, int64_t n);
// out[i] = e^(x[i] − m) for x[i] <= m (softmax's shifted scores; within 2 ulp of expf, exactly 0
// below e^−87.3), returning the sum in double; out may be x.
double exp_sub(const float* x, float m, float* out, int64_t n);
// out[i] = e^(scale · x[i] − m) for scale · x[i] <= m, each value as scale and exp_sub in turn give
// it, in one pass (attention's recomputed probabilities); out may be x.
void exp_scaled(const float* x, float scale, float m, float* out, int64_t n);
// x = softmax(scale · x) in place for n >= 1, returning the log-sum-exp of scale · x: the
// exponentials as exp_sub's, summed in 16 lanes and those as a fixed tree (every version gives
// the same bits).
float softmax(float* x, float scale, int64_t n);
// out[i] = σ(x[i]) = 1 / (1 + e^−x[i]), by the same exponential; out may be x.
void sigmoid(const float* x, float* out, int64_t n);

}  // namespace zephyr::vec

// Cross-entropy of next-token logits against targets, fused with its gradient.
#pragma once
#include <cstdint>
#include <functional>

namespace zephyr {

constexpr int kIgnoreIndex = -100;  // HF's label for positions without loss

// For each of n rows of logits [n, vocab] with target[i] != kIgnoreIndex: adds
// -log softmax(logits_i)[target_i] to the returned sum (in double) and writes
// dlogits_i = scale * (softmax(logits_i) - onehot(target_i)); ignored rows get zeros.
// dlogits may alias logits.
double cross_entropy_forward_backward(const float* logits, int64_t n, int64_t vocab, const int* target, float scale,
                                      float* dlogits);

// The same in blocks of 16 rows, calling rows_done(r0, r1) on the thread that wrote a block's
// dlogits while they are still in its cache (bf16 training packs them there for its GEMMs).
double cross_entropy_forward_backward(const float* logits, int64_t n, int64_t vocab, const int* target, float scale,
                                      float* dlogits, const std::function<void(int64_t, int64_t)>& rows_done);

}  // namespace zephyr

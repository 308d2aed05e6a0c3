// Cross-entropy of next-token logits against targets, fused with its gradient.
#pragma once
#include <cstdint>

namespace zephyr {

constexpr int kIgnoreIndex = -100;  // HF's label for positions without loss

// For each of n rows of logits [n, vocab] with target[i] != kIgnoreIndex: adds
// -log softmax(logits_i)[target_i] to the returned sum (in double) and writes
// dlogits_i = scale * (softmax(logits_i) - onehot(target_i)); ignored rows get zeros.
// dlogits may alias logits.
double cross_entropy_forward_backward(const float* logits, int64_t n, int64_t vocab, const int* target, float scale,
                                      float* dlogits);

// The same on the calling thread, each row's loss at losses[i]: for code that packs a block of
// rows' dlogits while they are in its cache (bf16 training, for its GEMMs).
void cross_entropy_rows(const float* logits, int64_t n, int64_t vocab, const int* target, float scale, float* dlogits,
                        double* losses);

}  // namespace zephyr

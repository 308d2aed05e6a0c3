// Dropout whose mask is a hash of (key, element index): element j is dropped when
// splitmix64(key + j) falls below p·2^64, and kept ones are scaled by 1 / (1 - p). A pass and its
// recomputation (the backward pass, gradient checkpointing, a resumed run) draw the same mask
// from the key alone, with nothing stored.
#pragma once
#include <cstddef>
#include <cstdint>

namespace zephyr {

inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct DropoutMask {
  uint64_t key, threshold;
  float scale;
  DropoutMask(uint64_t key, double p);  // p in [0, 1)
  bool keep(size_t j) const { return splitmix64(key + j) >= threshold; }
};

// For elements [j0, j0 + n): out = x · scale where kept, else 0 (x and out start at element j0).
void dropout_apply(const DropoutMask& mask, size_t j0, size_t n, const float* x, float* out);
// For elements [j0, j0 + n): dx += dxd · scale where kept (dx unchanged elsewhere).
void dropout_add_backward(const DropoutMask& mask, size_t j0, size_t n, const float* dxd, float* dx);

}  // namespace zephyr

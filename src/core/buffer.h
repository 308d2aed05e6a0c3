// Buffer: a float vector whose resize leaves new elements uninitialised, for arrays a kernel
// overwrites whole (activations, logits). std::vector's zero fill of those was ~5% of an SFT
// step, on one thread while the other waited (65 MB of logits per 512-token row alone).
#pragma once
#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace zephyr {

template <class T>
struct UninitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitAllocator<U>;
  };
  UninitAllocator() = default;
  // 64-byte aligned: a product streaming its results (gemm_bf16.h, Bf16Write) writes whole lines.
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, size_t n) noexcept { ::operator delete(p, n * sizeof(T), std::align_val_t(64)); }
  template <class U>
  UninitAllocator(const UninitAllocator<U>&) noexcept {}
  // Value-initialisation (what resize(n) asks for) becomes default-initialisation: none for float.
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

using Buffer = std::vector<float, UninitAllocator<float>>;

}  // namespace zephyr

// Memory for weights that are streamed every token: 2 MB-aligned anonymous pages with transparent
// huge pages requested, so a 14 GB sweep costs a few thousand TLB misses instead of millions
// (measured: ~12% faster decode than reading the mmapped file's 4 KB pages in place).
#pragma once
#include <cstddef>

namespace zephyr {

class HugeBuffer {
 public:
  explicit HugeBuffer(size_t bytes);
  ~HugeBuffer();
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void* map_ = nullptr;
  size_t map_size_ = 0;
  void* data_ = nullptr;
  size_t size_ = 0;
};

// Tells the kernel this process no longer needs the pages of [p, p + n) of a file mapping, so
// they leave its resident set (the page cache keeps them).
void release_mapped_pages(const void* p, size_t n);

}  // namespace zephyr

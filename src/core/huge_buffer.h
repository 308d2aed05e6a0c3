// Huge pages for memory read in long sweeps. HugeBuffer: weights that are streamed every token,
// 2 MB-aligned anonymous pages with transparent huge pages requested, so a 14 GB sweep costs a few
// thousand TLB misses instead of millions (measured: ~12% faster decode than reading the mmapped
// file's 4 KB pages in place). relaunch_with_huge_page_heap: the same for everything malloc hands
// out (training's weights, gradients, optimizer state and activations).
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

// Runs this program again (execv of /proc/self/exe with the same arguments) with glibc's malloc
// asking for transparent huge pages on the memory it takes from the kernel
// (GLIBC_TUNABLES=glibc.malloc.hugetlb=1), unless the variable already names that tunable (so
// glibc.malloc.hugetlb=0 turns it off), THP is off, or the exec fails: then it returns.
void relaunch_with_huge_page_heap(char** argv);

}  // namespace zephyr

// A read-only memory map of a whole file: weights are used in place, so loading a 14 GB model
// costs no copy and only the pages a forward pass touches become resident.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace zephyr {

class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace zephyr

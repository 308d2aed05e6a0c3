// safetensors (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length, a
// JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the raw data.
// Read through mmap with every offset checked; written to a temp name and renamed.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/mapped_file.h"

namespace zephyr {

struct TensorInfo {
  std::string name;
  std::string dtype;  // as written in the file: "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
  // The tensor's type if it is one we compute with; an Error naming the tensor otherwise.
  DType float_dtype(const std::string& where) const;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_->path(); }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // numel(shape) elements of dtype
};

// Writes tensors in the given order; the header is padded so the data starts 8-byte aligned.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The same, for tensors too big to hold at once: `fill(i, buffer)` writes tensor i's bytes into
// a buffer of its size just before it goes to disk (`data` of the specs is ignored).
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& specs,
                       const std::function<void(size_t, void*)>& fill,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace zephyr

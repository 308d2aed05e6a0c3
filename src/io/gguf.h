// GGUF (llama.cpp's model file, versions 2 and 3): "GGUF", version, tensor count, metadata count,
// then typed key/value metadata, tensor descriptions (name, dims innermost first, ggml type,
// offset), padding to `general.alignment` (default 32) and the tensor data. Read through mmap
// with every length, count and offset checked against the file, so a truncated or hostile file
// is an Error naming the byte; written to a temp name and renamed. No library covers GGUF
// outside llama.cpp itself, hence this reader.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/json_file.h"
#include "io/mapped_file.h"

namespace zephyr {

enum class GgufType : uint32_t { U8 = 0, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64 };

// A metadata value: numbers, bools and strings as JSON scalars, arrays as JSON arrays; `type`
// (and `elem` for arrays) keep the stored type so a file can be rewritten unchanged.
struct GgufValue {
  GgufType type = GgufType::U32;
  GgufType elem = GgufType::U32;
  json value;
};

struct GgufTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // outermost first, as PyTorch/HF write it (GGUF stores it reversed)
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
};

class GgufFile {
 public:
  explicit GgufFile(const std::filesystem::path& path);
  // Parses a GGUF image in memory (kept alive by the caller); `name` prefixes errors.
  GgufFile(const uint8_t* data, size_t size, const std::string& name);

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* tensor(const std::string& name) const;
  const GgufValue* find(const std::string& key) const;

  // Typed access; a missing key (without a default) or a wrong type is an Error naming the key.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  // An array; an Error if absent or not an array.
  const json& get_array(const std::string& key) const;

 private:
  void parse(const uint8_t* data, size_t size);
  std::shared_ptr<MappedFile> file_;
  std::string name_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> index_;
};

// The ggml type id of a DType and back (false/Error for types zephyr does not compute with;
// the Error names the ggml type).
uint32_t ggml_type_of(DType t);
DType dtype_of_ggml(uint32_t ggml_type, const std::string& where);

class GgufWriter {
 public:
  void set(const std::string& key, GgufType type, json value, GgufType elem = GgufType::U32);
  void set_string(const std::string& key, const std::string& v) { set(key, GgufType::String, v); }
  void set_u32(const std::string& key, uint32_t v) { set(key, GgufType::U32, v); }
  void set_f32(const std::string& key, float v) { set(key, GgufType::F32, v); }
  void set_bool(const std::string& key, bool v) { set(key, GgufType::Bool, v); }
  // `fill` writes the tensor's row_bytes(dtype, shape.back()) * rows bytes just before they go
  // to disk, so a model larger than memory can be converted tensor by tensor.
  void add_tensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                  std::function<void(uint8_t*)> fill);
  void write(const std::filesystem::path& path) const;

 private:
  struct Pending {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::function<void(uint8_t*)> fill;
  };
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Pending> tensors_;
};

}  // namespace zephyr

#include "io/safetensors.h"

#include <cstring>
#include <fstream>

#include "core/error.h"
#include "io/json_file.h"

namespace zephyr {

namespace {

size_t dtype_bytes(const std::string& d) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2},
      {"F16", 2},  {"BF16", 2}, {"I32", 4}, {"U32", 4},    {"F32", 4},     {"I64", 8}, {"U64", 8},
      {"F64", 8}};
  auto it = sizes.find(d);
  return it == sizes.end() ? 0 : it->second;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

DType TensorInfo::float_dtype(const std::string& where) const {
  if (dtype == "F32") return DType::F32;
  if (dtype == "BF16") return DType::BF16;
  if (dtype == "F16") return DType::F16;
  fail(where, "tensor '" + name + "' has dtype " + dtype + "; expected F32, BF16 or F16");
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path)
    : file_(std::make_shared<MappedFile>(path)) {
  const std::string where = path.string();
  const uint8_t* base = file_->data();
  const size_t size = file_->size();
  if (size < 8) fail(where, "truncated: " + std::to_string(size) + " bytes, expected an 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];
  if (header_len > size - 8)
    fail(where, "header length " + std::to_string(header_len) + " runs past the end of the file (" +
                    std::to_string(size) + " bytes)");
  json header;
  const std::string_view header_text(reinterpret_cast<const char*>(base) + 8, header_len);
  if (const size_t at = json_depth_overflow(header_text); at != std::string_view::npos)
    fail(where, "header nests deeper than " + std::to_string(kMaxJsonDepth) + " levels at byte " + std::to_string(8 + at));
  try {
    header = json::parse(base + 8, base + 8 + header_len);
  } catch (const json::parse_error& e) {
    fail(where, "header is not valid JSON at byte " + std::to_string(8 + e.byte - 1));
  } catch (const json::exception& e) {  // a number beyond double's range
    fail(where, "header is not usable JSON: " + json_error_text(e));
  }
  if (!header.is_object()) fail(where, "header is not a JSON object");
  const uint8_t* data = base + 8 + header_len;
  const size_t data_size = size - 8 - header_len;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(where, "__metadata__ is not an object");
      for (auto& [k, v] : entry.items())
        if (v.is_string()) metadata_[k] = v.get<std::string>();
      continue;
    }
    const std::string at = where + ": tensor '" + name + "'";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      fail(at, "expected {dtype, shape, data_offsets}");
    TensorInfo t;
    t.name = name;
    if (!entry["dtype"].is_string()) fail(at, "dtype is not a string");
    t.dtype = entry["dtype"].get<std::string>();
    const size_t elem = dtype_bytes(t.dtype);
    if (elem == 0) fail(at, "unknown dtype '" + t.dtype + "'");
    const auto& shape = entry["shape"];
    const auto& off = entry["data_offsets"];
    if (!shape.is_array()) fail(at, "shape is not an array");
    uint64_t numel = 1;
    for (auto& d : shape) {
      if (!d.is_number_unsigned()) fail(at, "shape has a non-integer or negative dimension");
      t.shape.push_back(d.get<int64_t>());
      // Overflow-checked: a hostile shape must not wrap around to a small size.
      if (__builtin_mul_overflow(numel, d.get<uint64_t>(), &numel) || numel > size)
        fail(at, "shape is larger than the file");
    }
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(at, "data_offsets must be [begin, end]");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size)
      fail(at, "data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] lie outside the " +
                   std::to_string(data_size) + " data bytes (file truncated?)");
    if (e - b != numel * elem)  // numel <= file size, so this product cannot overflow
      fail(at, "holds " + std::to_string(e - b) + " bytes but shape and dtype need " + std::to_string(numel * elem));
    t.data = data + b;
    t.nbytes = e - b;
    tensors_.emplace(name, std::move(t));
  }
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_safetensors(
      path, tensors,
      [&](size_t i, void* buffer) {
        int64_t numel = 1;
        for (auto d : tensors[i].shape) numel *= d;
        std::memcpy(buffer, tensors[i].data, size_t(numel) * dtype_size(tensors[i].dtype));
      },
      metadata);
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::function<void(size_t, void*)>& fill,
                       const std::map<std::string, std::string>& metadata) {
  // Built as text by hand to keep the caller's tensor order (nlohmann's json sorts keys).
  std::string header = "{";
  if (!metadata.empty()) {
    json m(metadata);
    header += "\"__metadata__\":" + m.dump() + ",";
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    int64_t numel = 1;
    json shape = json::array();
    for (auto d : t.shape) {
      numel *= d;
      shape.push_back(d);
    }
    const uint64_t bytes = uint64_t(numel) * dtype_size(t.dtype);
    header += json(t.name).dump() + ":{\"dtype\":\"" + dtype_name(t.dtype) + "\",\"shape\":" + shape.dump() +
              ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]},";
    offset += bytes;
  }
  if (header.back() == ',') header.pop_back();
  header += "}";
  while ((8 + header.size()) % 8 != 0) header += ' ';

  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(tmp.string(), "cannot create file");
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(header.data(), std::streamsize(header.size()));
    std::vector<char> buffer;
    try {
      for (size_t i = 0; i < tensors.size(); ++i) {
        int64_t numel = 1;
        for (auto d : tensors[i].shape) numel *= d;
        buffer.resize(size_t(numel) * dtype_size(tensors[i].dtype));
        fill(i, buffer.data());
        out.write(buffer.data(), std::streamsize(buffer.size()));
        if (!out) break;
      }
    } catch (...) {  // never leave a half-written temp file behind
      out.close();
      std::filesystem::remove(tmp);
      throw;
    }
    out.flush();
    if (!out) {
      out.close();
      std::filesystem::remove(tmp);
      fail(tmp.string(), "write failed (disk full?)");
    }
  }
  commit_file(tmp, path);
}

}  // namespace zephyr

#include "io/gguf.h"

#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "io/json_file.h"

namespace zephyr {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxDims = 4;  // GGML_MAX_DIMS

// ggml type ids (a fact of the format) with names for error messages.
struct GgmlTypeName {
  uint32_t id;
  const char* name;
};
constexpr GgmlTypeName kGgmlNames[] = {
    {0, "F32"},     {1, "F16"},      {2, "Q4_0"},     {3, "Q4_1"},    {6, "Q5_0"},    {7, "Q5_1"},   {8, "Q8_0"},
    {9, "Q8_1"},    {10, "Q2_K"},    {11, "Q3_K"},    {12, "Q4_K"},   {13, "Q5_K"},   {14, "Q6_K"},  {15, "Q8_K"},
    {16, "IQ2_XXS"}, {17, "IQ2_XS"}, {18, "IQ3_XXS"}, {19, "IQ1_S"},  {20, "IQ4_NL"}, {21, "IQ3_S"}, {22, "IQ2_S"},
    {23, "IQ4_XS"}, {24, "I8"},      {25, "I16"},     {26, "I32"},    {27, "I64"},    {28, "F64"},   {29, "IQ1_M"},
    {30, "BF16"},   {34, "TQ1_0"},   {35, "TQ2_0"},   {39, "MXFP4"}};

struct Supported {
  uint32_t id;
  DType dtype;
};
constexpr Supported kSupported[] = {{0, DType::F32},  {1, DType::F16},  {30, DType::BF16}, {8, DType::Q8_0},
                                    {2, DType::Q4_0}, {3, DType::Q4_1}, {12, DType::Q4_K}, {14, DType::Q6_K}};

const char* type_name(GgufType t) {
  static const char* names[] = {"uint8", "int8",   "uint16", "int16",  "uint32", "int32", "float32",
                                "bool",  "string", "array",  "uint64", "int64",  "float64"};
  return uint32_t(t) < 13 ? names[uint32_t(t)] : "?";
}

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

// Reads little-endian values with every read checked against the end of the image.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& name) : data_(data), size_(size), name_(name) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  [[noreturn]] void error(const std::string& what, size_t at) const {
    fail(name_, "byte " + std::to_string(at) + ": " + what);
  }
  const uint8_t* take(size_t n, const char* what) {
    if (n > remaining())
      error(std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes, " + std::to_string(remaining()) +
                " left",
            pos_);
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  template <class T>
  T read(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }
  std::string string(const char* what) {
    const size_t at = pos_;
    const uint64_t n = read<uint64_t>(what);
    if (n > remaining()) error(std::string(what) + " of " + std::to_string(n) + " bytes runs past the end of the file", at);
    const uint8_t* p = take(size_t(n), what);
    return std::string(reinterpret_cast<const char*>(p), size_t(n));
  }
  json scalar(GgufType t, const char* what) {
    switch (t) {
      case GgufType::U8: return read<uint8_t>(what);
      case GgufType::I8: return read<int8_t>(what);
      case GgufType::U16: return read<uint16_t>(what);
      case GgufType::I16: return read<int16_t>(what);
      case GgufType::U32: return read<uint32_t>(what);
      case GgufType::I32: return read<int32_t>(what);
      case GgufType::F32: return read<float>(what);
      case GgufType::Bool: {
        const size_t at = pos_;
        const uint8_t b = read<uint8_t>(what);
        if (b > 1) error("bool value " + std::to_string(b) + " (expected 0 or 1)", at);
        return b == 1;
      }
      case GgufType::String: return string(what);
      case GgufType::U64: return read<uint64_t>(what);
      case GgufType::I64: return read<int64_t>(what);
      case GgufType::F64: return read<double>(what);
      default: error("unexpected value type", pos_);
    }
  }

 private:
  const uint8_t* data_;
  size_t size_, pos_ = 0;
  const std::string& name_;
};

GgufType value_type(Cursor& c, const std::string& key) {
  const size_t at = c.pos();
  const uint32_t t = c.read<uint32_t>("value type");
  if (t > uint32_t(GgufType::F64)) c.error("metadata '" + key + "' has unknown value type " + std::to_string(t), at);
  return GgufType(t);
}

GgufValue read_value(Cursor& c, const std::string& key) {
  GgufValue v;
  v.type = value_type(c, key);
  if (v.type != GgufType::Array) {
    v.value = c.scalar(v.type, "metadata value");
    return v;
  }
  v.elem = value_type(c, key);
  if (v.elem == GgufType::Array) c.error("metadata '" + key + "': nested arrays are not supported", c.pos());
  const size_t at = c.pos();
  const uint64_t n = c.read<uint64_t>("array length");
  // Each element takes at least its scalar size (a string at least its 8-byte length).
  const size_t min_size = v.elem == GgufType::String ? 8 : scalar_size(v.elem);
  if (n > c.remaining() / min_size)
    c.error("metadata '" + key + "' claims " + std::to_string(n) + " elements, more than the file holds", at);
  v.value = json::array();
  auto& arr = v.value.get_ref<json::array_t&>();
  arr.reserve(size_t(n));
  for (uint64_t i = 0; i < n; ++i) arr.push_back(c.scalar(v.elem, "array element"));
  return v;
}

void write_bytes(std::FILE* f, const void* p, size_t n, const std::string& path) {
  if (n && std::fwrite(p, 1, n, f) != n) fail(path, "write failed (disk full?)");
}

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}
void put_scalar(std::string& out, GgufType t, const json& v) {
  switch (t) {
    case GgufType::U8: return put<uint8_t>(out, v.get<uint8_t>());
    case GgufType::I8: return put<int8_t>(out, v.get<int8_t>());
    case GgufType::U16: return put<uint16_t>(out, v.get<uint16_t>());
    case GgufType::I16: return put<int16_t>(out, v.get<int16_t>());
    case GgufType::U32: return put<uint32_t>(out, v.get<uint32_t>());
    case GgufType::I32: return put<int32_t>(out, v.get<int32_t>());
    case GgufType::F32: return put<float>(out, v.get<float>());
    case GgufType::Bool: return put<uint8_t>(out, v.get<bool>() ? 1 : 0);
    case GgufType::String: return put_string(out, v.get<std::string>());
    case GgufType::U64: return put<uint64_t>(out, v.get<uint64_t>());
    case GgufType::I64: return put<int64_t>(out, v.get<int64_t>());
    case GgufType::F64: return put<double>(out, v.get<double>());
    default: throw Error("GGUF writer: nested arrays are not supported");
  }
}

}  // namespace

uint32_t ggml_type_of(DType t) {
  for (const auto& s : kSupported)
    if (s.dtype == t) return s.id;
  throw Error(std::string("no ggml type for ") + dtype_name(t));
}

DType dtype_of_ggml(uint32_t id, const std::string& where) {
  for (const auto& s : kSupported)
    if (s.id == id) return s.dtype;
  std::string name = "unknown type " + std::to_string(id);
  for (const auto& n : kGgmlNames)
    if (n.id == id) name = std::string("type ") + n.name;
  fail(where, name + ", which zephyr cannot compute with (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)");
}

GgufFile::GgufFile(const std::filesystem::path& path) : file_(std::make_shared<MappedFile>(path)), name_(path.string()) {
  parse(file_->data(), file_->size());
}

GgufFile::GgufFile(const uint8_t* data, size_t size, const std::string& name) : name_(name) { parse(data, size); }

void GgufFile::parse(const uint8_t* data, size_t size) {
  Cursor c(data, size, name_);
  if (size < 4 || c.read<uint32_t>("magic") != kMagic) fail(name_, "not a GGUF file (it does not start with \"GGUF\")");
  version_ = c.read<uint32_t>("version");
  if (version_ == 1) fail(name_, "GGUF version 1 is not supported (versions 2 and 3 are); convert it with a newer llama.cpp");
  if (version_ != 2 && version_ != 3) {
    if ((version_ & 0xffff) == 0) fail(name_, "big-endian GGUF files are not supported");
    fail(name_, "unsupported GGUF version " + std::to_string(version_) + " (expected 2 or 3)");
  }
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // A metadata entry takes at least 8 + 4 + 1 bytes, a tensor description at least 8 + 4 + 8 + 4 + 8.
  if (n_kv > c.remaining() / 13) c.error("metadata count " + std::to_string(n_kv) + " is more than the file can hold", 16);
  if (n_tensors > c.remaining() / 32) c.error("tensor count " + std::to_string(n_tensors) + " is more than the file can hold", 8);
  for (uint64_t i = 0; i < n_kv; ++i) {
    const size_t at = c.pos();
    std::string key = c.string("metadata key");
    GgufValue v = read_value(c, key);
    if (!metadata_.emplace(key, std::move(v)).second) c.error("metadata key '" + key + "' appears twice", at);
  }
  uint64_t alignment = kDefaultAlignment;
  if (const GgufValue* a = find("general.alignment")) {
    // The spec asks for a multiple of 8; a power of two from 8 on also keeps every tensor's
    // blocks (fp16 scales, floats) at an address their type can be read from.
    if (a->type != GgufType::U32 || a->value.get<uint64_t>() < 8 ||
        (a->value.get<uint64_t>() & (a->value.get<uint64_t>() - 1)) != 0)
      fail(name_, "general.alignment must be a power of two of at least 8, stored as uint32");
    alignment = a->value.get<uint64_t>();
  }
  struct Raw {
    uint64_t offset;
    size_t at;
  };
  std::vector<Raw> raw;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const size_t at = c.pos();
    GgufTensor t;
    t.name = c.string("tensor name");
    const uint32_t n_dims = c.read<uint32_t>("dimension count");
    if (n_dims == 0 || n_dims > kMaxDims)
      c.error("tensor '" + t.name + "' has " + std::to_string(n_dims) + " dimensions (expected 1 to 4)", at);
    std::vector<int64_t> ne(n_dims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t v = c.read<uint64_t>("dimension");
      if (v == 0 || v > (uint64_t(1) << 40) || numel > (uint64_t(1) << 50) / v)
        c.error("tensor '" + t.name + "' has an absurd dimension " + std::to_string(v), at);
      numel *= v;
      ne[d] = int64_t(v);
    }
    const uint32_t type = c.read<uint32_t>("tensor type");
    t.dtype = dtype_of_ggml(type, name_ + ": tensor '" + t.name + "'");
    if (ne[0] % block_elements(t.dtype) != 0)
      c.error("tensor '" + t.name + "': its rows of " + std::to_string(ne[0]) + " are not whole " + dtype_name(t.dtype) +
                  " blocks",
              at);
    t.shape.assign(ne.rbegin(), ne.rend());
    t.nbytes = row_bytes(t.dtype, ne[0]) * size_t(numel / uint64_t(ne[0]));
    const uint64_t offset = c.read<uint64_t>("tensor offset");
    if (offset % alignment != 0)
      c.error("tensor '" + t.name + "' offset " + std::to_string(offset) + " is not a multiple of the alignment " +
                  std::to_string(alignment),
              at);
    if (index_.count(t.name)) c.error("tensor '" + t.name + "' appears twice", at);
    index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
    raw.push_back({offset, at});
  }
  const uint64_t data_start = (c.pos() + alignment - 1) / alignment * alignment;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    GgufTensor& t = tensors_[i];
    if (data_start > size || raw[i].offset > size - data_start || t.nbytes > size - data_start - raw[i].offset)
      c.error("tensor '" + t.name + "' (" + std::to_string(t.nbytes) + " bytes at data offset " +
                  std::to_string(raw[i].offset) + ") lies beyond the end of the file (" + std::to_string(size) +
                  " bytes): truncated?",
              raw[i].at);
    t.data = data + data_start + raw[i].offset;
  }
}

const GgufTensor* GgufFile::tensor(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(name_, "missing metadata '" + key + "'");
  if (!v->value.is_number_integer() && !v->value.is_number_unsigned())
    fail(name_, "metadata '" + key + "' is " + type_name(v->type) + ", expected an integer");
  if (v->value.is_number_unsigned() && v->value.get<uint64_t>() > uint64_t(INT64_MAX))
    fail(name_, "metadata '" + key + "' is out of range");
  return v->value.get<int64_t>();
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const { return find(key) ? get_int(key) : fallback; }

double GgufFile::get_float(const std::string& key, double fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  if (!v->value.is_number()) fail(name_, "metadata '" + key + "' is " + type_name(v->type) + ", expected a number");
  return v->value.get<double>();
}

bool GgufFile::get_bool(const std::string& key, bool fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  if (!v->value.is_boolean()) fail(name_, "metadata '" + key + "' is " + type_name(v->type) + ", expected a bool");
  return v->value.get<bool>();
}

std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  if (!v->value.is_string()) fail(name_, "metadata '" + key + "' is " + type_name(v->type) + ", expected a string");
  return v->value.get<std::string>();
}

const json& GgufFile::get_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(name_, "missing metadata '" + key + "'");
  if (v->type != GgufType::Array) fail(name_, "metadata '" + key + "' is " + type_name(v->type) + ", expected an array");
  return v->value;
}

void GgufWriter::set(const std::string& key, GgufType type, json value, GgufType elem) {
  for (auto& [k, v] : metadata_)
    if (k == key) {
      v = GgufValue{type, elem, std::move(value)};
      return;
    }
  metadata_.emplace_back(key, GgufValue{type, elem, std::move(value)});
}

void GgufWriter::add_tensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                            std::function<void(uint8_t*)> fill) {
  if (shape.empty() || shape.back() % block_elements(dtype) != 0)
    throw Error("GGUF writer: tensor '" + name + "' rows are not whole " + dtype_name(dtype) + " blocks");
  tensors_.push_back({name, dtype, shape, std::move(fill)});
}

void GgufWriter::write(const std::filesystem::path& path) const {
  std::string head;
  put<uint32_t>(head, kMagic);
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, metadata_.size());
  for (const auto& [key, v] : metadata_) {
    put_string(head, key);
    put<uint32_t>(head, uint32_t(v.type));
    if (v.type == GgufType::Array) {
      put<uint32_t>(head, uint32_t(v.elem));
      put<uint64_t>(head, v.value.size());
      for (const auto& e : v.value) put_scalar(head, v.elem, e);
    } else {
      put_scalar(head, v.type, v.value);
    }
  }
  std::vector<size_t> sizes;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, uint32_t(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(head, uint64_t(*it));
    put<uint32_t>(head, ggml_type_of(t.dtype));
    put<uint64_t>(head, offset);
    size_t rows = 1;
    for (size_t d = 0; d + 1 < t.shape.size(); ++d) rows *= size_t(t.shape[d]);
    sizes.push_back(rows * row_bytes(t.dtype, t.shape.back()));
    offset += (sizes.back() + kDefaultAlignment - 1) / kDefaultAlignment * kDefaultAlignment;
  }
  head.resize((head.size() + kDefaultAlignment - 1) / kDefaultAlignment * kDefaultAlignment, '\0');

  // A fixed temp name: a run killed mid-write leaves PATH.tmp, which the next run overwrites.
  const std::filesystem::path tmp = path.string() + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(tmp.string(), "cannot create file");
  try {
    write_bytes(f, head.data(), head.size(), tmp.string());
    std::vector<uint8_t> buf;
    const char zeros[kDefaultAlignment] = {};
    for (size_t i = 0; i < tensors_.size(); ++i) {
      buf.assign(sizes[i], 0);
      tensors_[i].fill(buf.data());
      write_bytes(f, buf.data(), buf.size(), tmp.string());
      write_bytes(f, zeros, (kDefaultAlignment - sizes[i] % kDefaultAlignment) % kDefaultAlignment, tmp.string());
    }
    if (std::fflush(f) != 0) fail(tmp.string(), "write failed (disk full?)");
    std::fclose(f);
    f = nullptr;
    commit_file(tmp, path);
  } catch (...) {
    if (f) std::fclose(f);
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

}  // namespace zephyr

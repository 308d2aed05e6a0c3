#include "model/weights.h"

#include <cstring>

#include "core/error.h"
#include "core/parallel.h"

namespace zephyr {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

const TensorInfo& expect(const ModelDir& files, const std::string& name, const std::vector<int64_t>& shape) {
  const TensorInfo* t = files.find(name);
  if (!t) fail(files.file_of(name), "missing tensor '" + name + "'");
  if (t->shape != shape)
    fail(files.file_of(name), "tensor '" + name + "' has shape " + shape_str(t->shape) + ", expected " + shape_str(shape));
  t->float_dtype(files.file_of(name));
  return *t;
}

Matrix mapped_matrix(const ModelDir& files, const std::string& name, int64_t rows, int64_t cols) {
  const TensorInfo& t = expect(files, name, {rows, cols});
  return Matrix{t.float_dtype(files.file_of(name)), rows, cols, t.data};
}

// Stacks the named [rows_i, cols] matrices into one copy in huge-page memory. Parts stored in
// different dtypes are widened to F32 so one kernel reads them all.
Matrix packed_matrix(const ModelDir& files, const std::vector<std::pair<std::string, int64_t>>& parts, int64_t cols,
                     ModelWeights& w) {
  std::vector<Matrix> src;
  int64_t rows = 0;
  for (auto& [name, r] : parts) {
    src.push_back(mapped_matrix(files, name, r, cols));
    rows += r;
  }
  DType dtype = src[0].dtype;
  for (auto& m : src)
    if (m.dtype != dtype) dtype = DType::F32;
  auto buf = std::make_shared<HugeBuffer>(size_t(rows) * size_t(cols) * dtype_size(dtype));
  auto* out = static_cast<uint8_t*>(buf->data());
  for (auto& m : src) {
    const size_t row_bytes = size_t(cols) * dtype_size(dtype);
    parallel_for(size_t(m.rows), 64, [&](size_t r0, size_t r1) {
      if (m.dtype == dtype)
        std::memcpy(out + r0 * row_bytes, static_cast<const uint8_t*>(m.data) + r0 * row_bytes, (r1 - r0) * row_bytes);
      else
        for (size_t r = r0; r < r1; ++r) matrix_row(m, int64_t(r), reinterpret_cast<float*>(out + r * row_bytes));
    });
    release_mapped_pages(m.data, m.nbytes());
    out += size_t(m.rows) * row_bytes;
  }
  w.storage.push_back(buf);
  return Matrix{dtype, rows, cols, buf->data()};
}

std::vector<float> vector_f32(const ModelDir& files, const std::string& name, int64_t n) {
  const TensorInfo& t = expect(files, name, {n});
  std::vector<float> v(static_cast<size_t>(n));
  to_f32(t.float_dtype(files.file_of(name)), t.data, v.data(), size_t(n));
  return v;
}

}  // namespace

Model Model::load(const std::filesystem::path& path) {
  Model m;
  m.dir = ModelDir::resolve(path);
  m.config = ModelConfig::load(m.dir / "config.json");  // before the weights: its errors come first
  m.files = std::make_shared<ModelDir>(m.dir);
  m.generation_config = m.files->generation_config();
  const ModelConfig& c = m.config;
  const ModelDir& f = *m.files;
  ModelWeights& w = m.weights;
  if (c.tie_word_embeddings && !f.find("lm_head.weight")) {
    w.lm_head = packed_matrix(f, {{"model.embed_tokens.weight", c.vocab_size}}, c.hidden_size, w);
    w.embed = w.lm_head;
  } else {
    w.embed = mapped_matrix(f, "model.embed_tokens.weight", c.vocab_size, c.hidden_size);
    w.lm_head = packed_matrix(f, {{"lm_head.weight", c.vocab_size}}, c.hidden_size, w);
  }
  w.final_norm = vector_f32(f, "model.norm.weight", c.hidden_size);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights l;
    l.input_norm = vector_f32(f, p + "input_layernorm.weight", c.hidden_size);
    l.post_attention_norm = vector_f32(f, p + "post_attention_layernorm.weight", c.hidden_size);
    l.qkv = packed_matrix(f,
                          {{p + "self_attn.q_proj.weight", c.q_dim()},
                           {p + "self_attn.k_proj.weight", c.kv_dim()},
                           {p + "self_attn.v_proj.weight", c.kv_dim()}},
                          c.hidden_size, w);
    l.o = packed_matrix(f, {{p + "self_attn.o_proj.weight", c.hidden_size}}, c.q_dim(), w);
    l.gate_up = packed_matrix(
        f, {{p + "mlp.gate_proj.weight", c.intermediate_size}, {p + "mlp.up_proj.weight", c.intermediate_size}},
        c.hidden_size, w);
    l.down = packed_matrix(f, {{p + "mlp.down_proj.weight", c.hidden_size}}, c.intermediate_size, w);
    w.layers.push_back(std::move(l));
  }
  return m;
}

std::vector<int64_t> Model::eos_token_ids() const {
  std::vector<int64_t> ids;
  if (generation_config.contains("eos_token_id")) {
    const json& e = generation_config["eos_token_id"];
    if (e.is_number_integer()) ids.push_back(e.get<int64_t>());
    else if (e.is_array())
      for (auto& v : e)
        if (v.is_number_integer()) ids.push_back(v.get<int64_t>());
  }
  return ids.empty() ? config.eos_token_ids : ids;
}

}  // namespace zephyr

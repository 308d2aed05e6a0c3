#include "model/weights.h"

#include <cstring>
#include <functional>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/quant/formats.h"
#include "kernels/quant/interleave.h"
#include "model/gguf_model.h"
#include "model/served_adapter.h"

namespace zephyr {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// A stored tensor, found by its HF name in either kind of file.
struct Source {
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;
  size_t nbytes;
  int64_t permuted_head_dim;  // > 0: rows in GGUF's rotary order, heads of this size
};

class Tensors {
 public:
  using Find = std::function<bool(const std::string&, Source&)>;
  Tensors(Find find, std::function<std::string(const std::string&)> file_of) : find_(std::move(find)), file_of_(std::move(file_of)) {}

  bool find(const std::string& name, Source& s) const { return find_(name, s); }
  std::string file_of(const std::string& name) const { return file_of_(name); }
  bool has(const std::string& name) const {
    Source s;
    return find_(name, s);
  }
  Source expect(const std::string& name, const std::vector<int64_t>& shape) const {
    Source s;
    if (!find_(name, s)) fail(file_of_(name), "missing tensor '" + name + "'");
    if (s.shape != shape)
      fail(file_of_(name), "tensor '" + name + "' has shape " + shape_str(s.shape) + ", expected " + shape_str(shape));
    return s;
  }
  Matrix mapped_matrix(const std::string& name, int64_t rows, int64_t cols) const {
    const Source s = expect(name, {rows, cols});
    return Matrix{s.dtype, rows, cols, s.data};
  }
  // Stacks the named [rows_i, cols] matrices into one copy in huge-page memory (rows un-permuted
  // where the file stores them in GGUF's rotary order). Parts of different dtypes stay separate
  // matrices, each copied.
  StackedMatrix stacked(const std::vector<std::pair<std::string, int64_t>>& parts, int64_t cols, ModelWeights& w) const {
    std::vector<Source> src;
    for (auto& [name, r] : parts) src.push_back(expect(name, {r, cols}));
    StackedMatrix out;
    for (size_t i = 0; i < src.size();) {
      size_t j = i;
      int64_t rows = 0;
      while (j < src.size() && src[j].dtype == src[i].dtype) rows += src[j++].shape[0];
      const DType dtype = src[i].dtype;
      const size_t row_b = row_bytes(dtype, cols);
      // Where each stacked row comes from in the mapped files.
      std::vector<const uint8_t*> from(static_cast<size_t>(rows));
      for (size_t k = i, base = 0; k < j; base += size_t(src[k].shape[0]), ++k)
        for (int64_t g = 0; g < src[k].shape[0]; ++g) {
          const int64_t r = src[k].permuted_head_dim ? hf_row_of_gguf_row(g, src[k].permuted_head_dim) : g;
          from[base + size_t(r)] = src[k].data + size_t(g) * row_b;
        }
      auto buf = std::make_shared<HugeBuffer>(size_t(rows) * row_b);
      auto* dst = static_cast<uint8_t*>(buf->data());
      // Block types run faster with 8 rows interleaved (kernels/quant/interleave.h): same bytes, new order,
      // made group by group through a small buffer.
      const DType fast = interleaved_type(dtype, rows, cols);
      parallel_for(size_t(rows), fast != dtype ? 8 : 64, [&](size_t r0, size_t r1) {
        if (fast == dtype) {
          for (size_t r = r0; r < r1; ++r) std::memcpy(dst + r * row_b, from[r], row_b);
          return;
        }
        std::vector<uint8_t> group(8 * row_b);
        for (size_t g = r0; g < r1; g += 8) {
          for (size_t r = 0; r < 8; ++r) std::memcpy(group.data() + r * row_b, from[g + r], row_b);
          interleave_groups(dtype, group.data(), dst, rows, cols, int64_t(g / 8), int64_t(g / 8 + 1));
        }
      });
      for (; i < j; ++i) release_mapped_pages(src[i].data, src[i].nbytes);
      w.storage.push_back(buf);
      out.parts.push_back(Matrix{fast, rows, cols, buf->data()});
      out.rows += rows;
    }
    return out;
  }
  Matrix packed(const std::string& name, int64_t rows, int64_t cols, ModelWeights& w) const {
    return stacked({{name, rows}}, cols, w).parts[0];
  }
  std::vector<float> vector_f32(const std::string& name, int64_t n) const {
    const Source s = expect(name, {n});
    if (is_quantized(s.dtype)) fail(file_of_(name), "tensor '" + name + "' is block-quantized; norm weights must be float");
    std::vector<float> v(static_cast<size_t>(n));
    dequantize_row(s.dtype, s.data, v.data(), n);
    return v;
  }

 private:
  Find find_;
  std::function<std::string(const std::string&)> file_of_;
};

void load_weights(const ModelConfig& c, const Tensors& f, ModelWeights& w) {
  if (c.tie_word_embeddings && !f.has("lm_head.weight")) {
    w.lm_head = f.packed("model.embed_tokens.weight", c.vocab_size, c.hidden_size, w);
    w.embed = w.lm_head;
  } else {
    w.embed = f.mapped_matrix("model.embed_tokens.weight", c.vocab_size, c.hidden_size);
    w.lm_head = f.packed("lm_head.weight", c.vocab_size, c.hidden_size, w);
  }
  w.final_norm = f.vector_f32("model.norm.weight", c.hidden_size);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights l;
    l.input_norm = f.vector_f32(p + "input_layernorm.weight", c.hidden_size);
    l.post_attention_norm = f.vector_f32(p + "post_attention_layernorm.weight", c.hidden_size);
    l.qkv = f.stacked({{p + "self_attn.q_proj.weight", c.q_dim()},
                       {p + "self_attn.k_proj.weight", c.kv_dim()},
                       {p + "self_attn.v_proj.weight", c.kv_dim()}},
                      c.hidden_size, w);
    l.o = f.packed(p + "self_attn.o_proj.weight", c.hidden_size, c.q_dim(), w);
    l.gate_up = f.stacked({{p + "mlp.gate_proj.weight", c.intermediate_size}, {p + "mlp.up_proj.weight", c.intermediate_size}},
                          c.hidden_size, w);
    l.down = f.packed(p + "mlp.down_proj.weight", c.hidden_size, c.intermediate_size, w);
    w.layers.push_back(std::move(l));
  }
}

}  // namespace

Model Model::load(const std::filesystem::path& path, const PeftAdapter* adapter) {
  Model m;
  if (is_gguf_file(path)) {
    m.dir = path;
    m.gguf = std::make_shared<GgufFile>(path);
    m.config = config_from_gguf(*m.gguf);
    const GgufFile& g = *m.gguf;
    const int64_t head_dim = m.config.head_dim;
    Tensors f(
        [&g, head_dim](const std::string& name, Source& s) {
          const std::string gname = gguf_tensor_name(name);
          const GgufTensor* t = gname.empty() ? nullptr : g.tensor(gname);
          if (!t) return false;
          const bool permuted = name.find("q_proj") != std::string::npos || name.find("k_proj") != std::string::npos;
          s = Source{t->dtype, t->shape, t->data, t->nbytes, permuted ? head_dim : 0};
          return true;
        },
        [&g](const std::string& name) { return g.name() + " (tensor " + gguf_tensor_name(name) + ")"; });
    load_weights(m.config, f, m.weights);
  } else {
    m.dir = ModelDir::resolve(path);
    m.config = ModelConfig::load(m.dir / "config.json");  // before the weights: its errors come first
    m.files = std::make_shared<ModelDir>(m.dir);
    m.generation_config = m.files->generation_config();
    const ModelDir& d = *m.files;
    Tensors f(
        [&d](const std::string& name, Source& s) {
          const TensorInfo* t = d.find(name);
          if (!t) return false;
          s = Source{t->float_dtype(d.file_of(name)), t->shape, t->data, t->nbytes, 0};
          return true;
        },
        [&d](const std::string& name) { return d.file_of(name); });
    load_weights(m.config, f, m.weights);
  }
  if (adapter) m.adapter = std::make_shared<const ServedAdapter>(ServedAdapter::make(path_name(adapter->dir), *adapter, m));
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

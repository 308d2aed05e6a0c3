#include "model/weights.h"

#include "core/error.h"

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

Matrix matrix(const ModelDir& files, const std::string& name, int64_t rows, int64_t cols) {
  const TensorInfo& t = expect(files, name, {rows, cols});
  return Matrix{t.float_dtype(files.file_of(name)), rows, cols, t.data};
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
  m.files = std::make_shared<ModelDir>(path);
  m.dir = m.files->dir();
  m.config = ModelConfig::from_json(m.files->config(), (m.dir / "config.json").string());
  m.generation_config = m.files->generation_config();
  const ModelConfig& c = m.config;
  const ModelDir& f = *m.files;
  ModelWeights& w = m.weights;
  w.embed = matrix(f, "model.embed_tokens.weight", c.vocab_size, c.hidden_size);
  if (c.tie_word_embeddings && !f.find("lm_head.weight")) w.lm_head = w.embed;
  else w.lm_head = matrix(f, "lm_head.weight", c.vocab_size, c.hidden_size);
  w.final_norm = vector_f32(f, "model.norm.weight", c.hidden_size);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights l;
    l.input_norm = vector_f32(f, p + "input_layernorm.weight", c.hidden_size);
    l.post_attention_norm = vector_f32(f, p + "post_attention_layernorm.weight", c.hidden_size);
    l.q = matrix(f, p + "self_attn.q_proj.weight", c.q_dim(), c.hidden_size);
    l.k = matrix(f, p + "self_attn.k_proj.weight", c.kv_dim(), c.hidden_size);
    l.v = matrix(f, p + "self_attn.v_proj.weight", c.kv_dim(), c.hidden_size);
    l.o = matrix(f, p + "self_attn.o_proj.weight", c.hidden_size, c.q_dim());
    l.gate = matrix(f, p + "mlp.gate_proj.weight", c.intermediate_size, c.hidden_size);
    l.up = matrix(f, p + "mlp.up_proj.weight", c.intermediate_size, c.hidden_size);
    l.down = matrix(f, p + "mlp.down_proj.weight", c.hidden_size, c.intermediate_size);
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

#include "model/trainable.h"

#include <algorithm>

#include "core/error.h"
#include "io/json_file.h"
#include "io/model_dir.h"
#include "model/gguf_model.h"
#include "io/safetensors.h"
#include "model/init.h"

namespace zephyr {

TrainableModel::TrainableModel(const ModelConfig& config) : config_(config) {
  size_t offset = 0;
  for (auto& [name, shape] : model_tensor_shapes(config)) {
    size_t numel = 1;
    for (auto d : shape) numel *= size_t(d);
    params_.push_back({name, shape, offset, numel});
    offset += numel;
  }
  weights_.assign(offset, 0.0f);
  grads_.assign(offset, 0.0f);
  embed_ = index("model.embed_tokens.weight");
  final_norm_ = index("model.norm.weight");
  lm_head_ = config.tie_word_embeddings ? embed_ : index("lm_head.weight");
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    layers_.push_back({index(p + "self_attn.q_proj.weight"), index(p + "self_attn.k_proj.weight"),
                       index(p + "self_attn.v_proj.weight"), index(p + "self_attn.o_proj.weight"),
                       index(p + "mlp.gate_proj.weight"), index(p + "mlp.up_proj.weight"),
                       index(p + "mlp.down_proj.weight"), index(p + "input_layernorm.weight"),
                       index(p + "post_attention_layernorm.weight")});
  }
}

TrainableModel TrainableModel::load(const std::filesystem::path& path) {
  if (is_gguf_file(path))
    fail(path.string(), "is a GGUF file; training starts from an HF model directory (config.json + safetensors)");
  const std::filesystem::path dir = ModelDir::resolve(path);
  TrainableModel m(ModelConfig::load(dir / "config.json"));
  m.load_weights(dir);
  return m;
}

void TrainableModel::load_weights(const std::filesystem::path& path) {
  const ModelDir files(ModelDir::resolve(path));
  for (const ParamInfo& p : params_) {
    const TensorInfo* t = files.find(p.name);
    if (!t) fail(files.file_of(p.name), "missing tensor '" + p.name + "'");
    if (t->shape != p.shape) fail(files.file_of(p.name), "tensor '" + p.name + "' has the wrong shape");
    to_f32(t->float_dtype(files.file_of(p.name)), t->data, weights_.data() + p.offset, p.numel);
  }
}

void TrainableModel::save(const std::filesystem::path& dir, const std::filesystem::path& source_dir) const {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  std::vector<TensorToWrite> tensors;
  for (const ParamInfo& p : params_) tensors.push_back({p.name, DType::F32, p.shape, weights_.data() + p.offset});
  write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  for (const char* f : {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    if (!fs::exists(source_dir / f) || fs::equivalent(source_dir, dir)) continue;
    fs::copy_file(source_dir / f, dir / (std::string(f) + ".tmp"), fs::copy_options::overwrite_existing);
    fs::rename(dir / (std::string(f) + ".tmp"), dir / f);
  }
  ModelConfig c = config_;
  c.torch_dtype = "float32";
  write_file_atomic(dir / "config.json", c.to_json().dump(2) + "\n");
}

void TrainableModel::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

size_t TrainableModel::index(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) return i;
  fail("model", "no parameter named '" + name + "'");
}

Matrix TrainableModel::matrix(size_t i) const {
  const ParamInfo& p = params_[i];
  return Matrix{DType::F32, p.shape[0], p.shape.size() > 1 ? p.shape[1] : 1, weights_.data() + p.offset};
}

}  // namespace zephyr

#include "model/trainable.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
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
    params_.push_back({name, shape, offset, numel, true, offset});
    offset += numel;
  }
  weights_.assign(offset, 0.0f);
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
  if (lora_) {
    const std::filesystem::path file = path / "adapter_model.safetensors";
    if (!std::filesystem::exists(file)) fail(path.string(), "has no adapter_model.safetensors");
    const SafetensorsFile f(file);
    for (const ParamInfo& p : params_) {
      if (!p.trainable) continue;
      const TensorInfo* t = f.find(p.name);
      if (!t) fail(file.string(), "missing tensor '" + p.name + "' (an adapter of another rank or target set?)");
      if (t->shape != p.shape) fail(file.string(), "tensor '" + p.name + "' has the wrong shape");
      to_f32(t->float_dtype(file.string()), t->data, weights_.data() + p.offset, p.numel);
    }
    return;
  }
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
  for (const ParamInfo& p : params_)
    if (p.trainable) tensors.push_back({p.name, DType::F32, p.shape, weights_.data() + p.offset});
  write_safetensors(dir / (lora_ ? "adapter_model.safetensors" : "model.safetensors"), tensors, {{"format", "pt"}});
  for (const char* f : {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    if (!fs::exists(source_dir / f) || fs::equivalent(source_dir, dir)) continue;
    fs::copy_file(source_dir / f, dir / (std::string(f) + ".tmp"), fs::copy_options::overwrite_existing);
    fs::rename(dir / (std::string(f) + ".tmp"), dir / f);
  }
  if (lora_) {
    const std::string base = fs::absolute(source_dir).lexically_normal().string();
    write_file_atomic(dir / "adapter_config.json", peft_config_json(*lora_, config_.num_hidden_layers, base).dump(2) + "\n");
    return;
  }
  ModelConfig c = config_;
  c.torch_dtype = "float32";
  write_file_atomic(dir / "config.json", c.to_json().dump(2) + "\n");
}

void TrainableModel::merge(const PeftAdapter& adapter) {
  if (lora_) fail("model", "has adapters of its own; merge into a plain model");
  const std::string where = (adapter.dir / "adapter_model.safetensors").string();
  if (config_.tie_word_embeddings && adapter.modules.count("lm_head"))
    fail(where, "adapts lm_head, which this model ties to its embedding; merging would untie them (use --lora when "
                "loading instead)");
  for (auto& [module, _] : adapter.modules) {
    const std::string name = module + ".weight";
    size_t i = params_.size();
    for (size_t k = 0; k < params_.size(); ++k)
      if (params_[k].name == name) i = k;
    if (i == params_.size() || params_[i].shape.size() != 2)
      fail(where, "adapts '" + module + "', which this model does not have");
    adapter.merge_into(name, weights_.data() + params_[i].offset, params_[i].shape[0], params_[i].shape[1]);
  }
}

void TrainableModel::add_lora(const LoraConfig& c, uint64_t seed) {
  if (lora_) fail("model", "already has adapters");
  c.validate("lora");
  lora_ = c;
  for (ParamInfo& p : params_) p.trainable = false;
  trainable_begin_ = weights_.size();
  adapter_of_.assign(params_.size(), -1);
  Rng rng(seed ^ 0x4c6f5241ull);
  size_t offset = weights_.size();
  for (const std::string& module : lora_modules(c, config_.num_hidden_layers)) {
    const size_t w = module == "lm_head" ? lm_head_ : index(module + ".weight");
    const int64_t out = params_[w].shape[0], in = params_[w].shape[1];
    const size_t a = params_.size();
    params_.push_back({peft_tensor_name(module, 'A'), {c.r, in}, offset, size_t(c.r * in), true, offset - trainable_begin_});
    offset += params_.back().numel;
    params_.push_back({peft_tensor_name(module, 'B'), {out, c.r}, offset, size_t(out * c.r), true, offset - trainable_begin_});
    offset += params_.back().numel;
    adapter_of_[w] = int(adapters_.size());
    adapters_.push_back({a, a + 1, c.scale()});
  }
  weights_.resize(offset, 0.0f);
  // peft: kaiming_uniform_(A, a=sqrt(5)), a bound of sqrt(6 / ((1 + 5) fan_in)) = 1 / sqrt(in).
  for (const Adapter& ad : adapters_) {
    const ParamInfo& A = params_[ad.a];
    const double bound = 1.0 / std::sqrt(double(A.shape[1]));
    for (size_t j = 0; j < A.numel; ++j) weights_[A.offset + j] = float((2 * rng.uniform() - 1) * bound);
  }
}

// Allocated on first use: a model that only scores (a DPO reference) or whose base is frozen never
// holds gradients for all of its weights.
void TrainableModel::zero_grads() {
  if (grads_.size() != trainable_numel()) grads_ = std::vector<float>(trainable_numel(), 0.0f);
  else std::fill(grads_.begin(), grads_.end(), 0.0f);
}

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

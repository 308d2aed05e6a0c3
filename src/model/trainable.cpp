#include "model/trainable.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "io/json_file.h"
#include "io/model_dir.h"
#include "model/gguf_model.h"
#include "io/safetensors.h"
#include "kernels/quant/formats.h"
#include "model/init.h"

namespace zephyr {

TrainableModel::TrainableModel(const ModelConfig& config, bool frozen_linears) : config_(config) {
  size_t offset = 0;
  for (auto& [name, shape] : model_tensor_shapes(config)) {
    size_t numel = 1;
    for (auto d : shape) numel *= size_t(d);
    // A frozen base's linear layers are stored elsewhere (load_frozen); the embedding stays here.
    const bool outside = frozen_linears && shape.size() == 2 && name != "model.embed_tokens.weight";
    params_.push_back({name, shape, outside ? 0 : offset, numel, !outside, outside ? 0 : offset});
    if (!outside) offset += numel;
  }
  frozen_.resize(params_.size());
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
    fail(path.string(), "is a GGUF file; full training starts from an HF model directory (zephyr export-hf writes one); "
                        "LoRA adapters can train on the GGUF itself (use_peft: true)");
  const std::filesystem::path dir = ModelDir::resolve(path);
  TrainableModel m(ModelConfig::load(dir / "config.json"));
  m.load_weights(dir);
  return m;
}

void TrainableModel::load_weights(const std::filesystem::path& path) {
  trained_bf16_.reset();
  if (lora_) {
    const std::filesystem::path file = path / "adapter_model.safetensors";
    if (!std::filesystem::exists(file)) fail(path.string(), "has no adapter_model.safetensors");
    const SafetensorsFile f(file);
    for (const ParamInfo& p : params_) {
      if (!p.trainable) continue;
      const TensorInfo* t = f.find(p.name);
      if (!t) fail(file.string(), "missing tensor '" + p.name + "' (an adapter of another rank or target set?)");
      if (t->shape != p.shape) fail(file.string(), "tensor '" + p.name + "' has the wrong shape");
      to_f32(t->float_dtype(file.string()), t->data, adapter_weights_.data() + p.grad_offset, p.numel);
    }
    return;
  }
  if (frozen_base()) fail(path.string(), "a frozen base takes adapters' weights only");
  const ModelDir files(ModelDir::resolve(path));
  for (const ParamInfo& p : params_) {
    const TensorInfo* t = files.find(p.name);
    if (!t) fail(files.file_of(p.name), "missing tensor '" + p.name + "'");
    if (t->shape != p.shape) fail(files.file_of(p.name), "tensor '" + p.name + "' has the wrong shape");
    to_f32(t->float_dtype(files.file_of(p.name)), t->data, weights_.data() + p.offset, p.numel);
    release_mapped_pages(t->data, t->nbytes);  // read once: the file's pages need not stay resident
  }
}

void TrainableModel::save(const std::filesystem::path& dir, const std::filesystem::path& source_dir) const {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  std::vector<TensorToWrite> tensors;
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].trainable) tensors.push_back({params_[i].name, DType::F32, params_[i].shape, data(i)});
  write_safetensors(dir / (lora_ ? "adapter_model.safetensors" : "model.safetensors"), tensors, {{"format", "pt"}});
  for (const char* f : {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    if (!fs::exists(source_dir / f) || fs::equivalent(source_dir, dir)) continue;
    fs::copy_file(source_dir / f, dir / (std::string(f) + ".tmp"), fs::copy_options::overwrite_existing);
    fs::rename(dir / (std::string(f) + ".tmp"), dir / f);
  }
  if (lora_) {
    const std::string base = fs::absolute(source_dir).lexically_normal().string();
    write_file_atomic(dir / "adapter_config.json", peft_config_json(*lora_, base).dump(2) + "\n");
    return;
  }
  ModelConfig c = config_;
  c.torch_dtype = "float32";
  write_file_atomic(dir / "config.json", c.to_json().dump(2) + "\n");
}

void TrainableModel::merge(const PeftAdapter& adapter) {
  trained_bf16_.reset();
  if (lora_ || frozen_base()) fail("model", "has adapters of its own or a frozen base; merge into a plain model");
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

std::vector<size_t> TrainableModel::linears() const {
  std::vector<size_t> out{lm_head_};
  for (const Layer& P : layers_) out.insert(out.end(), {P.q, P.k, P.v, P.o, P.gate, P.up, P.down});
  return out;
}

void TrainableModel::add_lora(const LoraConfig& c, uint64_t seed) {
  trained_bf16_.reset();
  if (lora_) fail("model", "already has adapters");
  c.validate("lora");
  lora_ = c;
  for (ParamInfo& p : params_) p.trainable = false;
  adapter_of_.assign(params_.size(), -1);
  Rng rng(seed ^ 0x4c6f5241ull);
  size_t offset = 0;  // in adapter_weights_
  for (const std::string& module : lora_modules(c, config_.num_hidden_layers)) {
    const size_t w = module == "lm_head" ? lm_head_ : index(module + ".weight");
    const int64_t out = params_[w].shape[0], in = params_[w].shape[1];
    const size_t a = params_.size();
    params_.push_back({peft_tensor_name(module, 'A'), {c.r, in}, 0, size_t(c.r * in), true, offset});
    offset += params_.back().numel;
    params_.push_back({peft_tensor_name(module, 'B'), {out, c.r}, 0, size_t(out * c.r), true, offset});
    offset += params_.back().numel;
    adapter_of_[w] = int(adapters_.size());
    adapters_.push_back({a, a + 1, c.scale()});
  }
  adapter_weights_.assign(offset, 0.0f);
  // peft: kaiming_uniform_(A, a=sqrt(5)), a bound of sqrt(6 / ((1 + 5) fan_in)) = 1 / sqrt(in).
  for (const Adapter& ad : adapters_) {
    const ParamInfo& A = params_[ad.a];
    const double bound = 1.0 / std::sqrt(double(A.shape[1]));
    for (size_t j = 0; j < A.numel; ++j) adapter_weights_[A.grad_offset + j] = float((2 * rng.uniform() - 1) * bound);
  }
}

size_t TrainableModel::num_parameters() const {
  size_t n = 0;
  for (const ParamInfo& p : params_) n += p.numel;  // a tied lm_head is no parameter of its own
  return n;
}

// Allocated on first use: a model that only scores (a DPO reference) or whose base is frozen never
// holds gradients for all of its weights.
void TrainableModel::zero_grads() {
  released_.clear();
  if (grads_.size() != trainable_numel()) grads_ = Buffer(trainable_numel(), 0.0f);
  else std::fill(grads_.begin(), grads_.end(), 0.0f);
  track_embedding_rows();
}

// The embedding's gradient is zero: from here on its rows are tracked, none yet.
void TrainableModel::track_embedding_rows() {
  embed_sparse_ = true;
  embed_rows_.clear();
  embed_marked_.assign(size_t(params_[embed_].shape[0]), 0);
}

void TrainableModel::zero_released_grad(size_t i) {
  float* g = grads_.data() + params_[i].grad_offset;
  released_[i] = 0;
  if (i == embed_ && embed_sparse_) {
    const size_t cols = size_t(params_[i].shape[1]);
    parallel_for(embed_rows_.size(), 64, [&](size_t b, size_t e) {
      for (size_t r = b; r < e; ++r) std::fill(g + size_t(embed_rows_[r]) * cols, g + size_t(embed_rows_[r] + 1) * cols, 0.0f);
    });
  } else {
    parallel_for(params_[i].numel, 1 << 15, [&](size_t b, size_t e) { std::fill(g + b, g + e, 0.0f); });
  }
  if (i == embed_) track_embedding_rows();
}

float* TrainableModel::embedding_grad_rows(const int* ids, int64_t n) {
  const size_t i = embed_;
  if (!params_[i].trainable) return nullptr;
  if (released(i)) zero_released_grad(i);
  if (embed_sparse_)
    for (int64_t t = 0; t < n; ++t)
      if (!embed_marked_[size_t(ids[t])]) {
        embed_marked_[size_t(ids[t])] = 1;
        embed_rows_.push_back(ids[t]);
      }
  return grads_.data() + params_[i].grad_offset;
}

void TrainableModel::zero_released_grads() {
  for (size_t i = 0; i < released_.size(); ++i)
    if (released_[i] && params_[i].trainable) zero_released_grad(i);
  released_.clear();
}

size_t TrainableModel::index(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) return i;
  fail("model", "no parameter named '" + name + "'");
}

TrainableModel TrainableModel::load_frozen(const std::filesystem::path& path, std::optional<DType> quantize) {
  const bool gguf = is_gguf_file(path);
  if (!gguf && !quantize) return load(path);
  std::shared_ptr<GgufFile> g;
  std::shared_ptr<ModelDir> files;
  ModelConfig config;
  if (gguf) {
    g = std::make_shared<GgufFile>(path);
    config = config_from_gguf(*g);
  } else {
    const std::filesystem::path dir = ModelDir::resolve(path);
    config = ModelConfig::load(dir / "config.json");
    files = std::make_shared<ModelDir>(dir);
    if (!can_quantize(*quantize)) fail(path.string(), "cannot quantize to the requested type");
  }
  TrainableModel m(config, true);
  for (size_t i = 0; i < m.params_.size(); ++i) {
    const ParamInfo& p = m.params_[i];
    // The stored tensor: its type, shape, bytes, and (GGUF q/k) the rotary row order to undo.
    DType dtype;
    std::vector<int64_t> shape;
    const uint8_t* data;
    std::string where;
    size_t nbytes = 0;
    int64_t permuted = 0;
    if (g) {
      const GgufTensor* t = g->tensor(gguf_tensor_name(p.name));
      where = g->name() + " (tensor " + gguf_tensor_name(p.name) + ")";
      if (!t) fail(where, "missing");
      dtype = t->dtype, shape = t->shape, data = t->data, nbytes = t->nbytes;
      if (p.name.find("q_proj") != std::string::npos || p.name.find("k_proj") != std::string::npos) permuted = config.head_dim;
    } else {
      const TensorInfo* t = files->find(p.name);
      where = files->file_of(p.name);
      if (!t) fail(where, "missing tensor '" + p.name + "'");
      dtype = t->float_dtype(where), shape = t->shape, data = t->data, nbytes = t->nbytes;
    }
    if (shape != p.shape) fail(where, "tensor '" + p.name + "' has the wrong shape");
    const int64_t rows = shape[0], cols = shape.size() > 1 ? shape[1] : 1;
    const size_t in_b = row_bytes(dtype, cols);
    // Stored row g is HF row hf_row(g); rows are copied in stored order to their HF place.
    auto hf_row = [&](size_t g) { return permuted ? size_t(hf_row_of_gguf_row(int64_t(g), permuted)) : g; };
    if (p.trainable) {  // embedding and norms: fp32 here
      float* dst = m.weights_.data() + p.offset;
      parallel_for(size_t(rows), 64, [&](size_t a, size_t b) {
        for (size_t g = a; g < b; ++g) dequantize_row(dtype, data + g * in_b, dst + hf_row(g) * size_t(cols), cols);
      });
      release_mapped_pages(data, nbytes);  // read once: the file's pages need not stay resident
      continue;
    }
    const DType out = gguf ? dtype : *quantize;
    if (!gguf && cols % block_elements(out) != 0)
      fail(where, "tensor '" + p.name + "': rows of " + std::to_string(cols) + " do not split into " + dtype_name(out) + " blocks");
    const size_t out_b = row_bytes(out, cols);
    auto buf = std::make_shared<HugeBuffer>(size_t(rows) * out_b);
    auto* dst = static_cast<uint8_t*>(buf->data());
    parallel_for(size_t(rows), 16, [&](size_t a, size_t b) {
      std::vector<float> row(gguf ? 0 : size_t(cols));
      for (size_t g = a; g < b; ++g) {
        if (gguf) {
          std::memcpy(dst + hf_row(g) * out_b, data + g * in_b, out_b);
        } else {
          to_f32(dtype, data + g * in_b, row.data(), size_t(cols));
          quantize_row(out, row.data(), dst + hf_row(g) * out_b, cols);
        }
      }
    });
    release_mapped_pages(data, nbytes);
    m.frozen_storage_.push_back(buf);
    m.frozen_[i] = Matrix{out, rows, cols, buf->data()};
  }
  return m;
}

Matrix TrainableModel::matrix(size_t i) const {
  if (i < frozen_.size() && frozen_[i].data) return frozen_[i];  // adapters come after the base
  const ParamInfo& p = params_[i];
  return Matrix{DType::F32, p.shape[0], p.shape.size() > 1 ? p.shape[1] : 1, data(i)};
}

}  // namespace zephyr

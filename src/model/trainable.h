// A model for training: every parameter in fp32 in one flat buffer, gradients of the trainable ones
// in another (one allreduce per step when training spans machines), addressed by HF names. With
// LoRA adapters (model/lora.h) the base is frozen: the adapters sit at the end of the flat buffer
// and only they have gradients (and optimizer state).
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/buffer.h"
#include "core/huge_buffer.h"
#include "kernels/gemm_bf16.h"
#include "kernels/matmul.h"
#include "model/config.h"
#include "model/lora.h"

namespace zephyr {

struct ParamInfo {
  std::string name;  // HF tensor name
  std::vector<int64_t> shape;
  size_t offset = 0, numel = 0;
  bool trainable = true;
  size_t grad_offset = 0;  // in grads(), when trainable
};

class TrainableModel {
 public:
  // Reads an HF model directory (F32/BF16/F16 weights, widened to fp32); errors as Model::load.
  static TrainableModel load(const std::filesystem::path& dir);
  // A base to train adapters on (QLoRA): a GGUF file whose linear layers stay in the file's type
  // (Q4_0, Q4_K, Q8_0, ...), or an HF directory whose linear layers are quantized to `quantize` as
  // they load (load_in_4bit); embeddings and norms in fp32. Those weights live outside weights():
  // matrix(i) gives them, and nothing but adapters can train on such a model.
  static TrainableModel load_frozen(const std::filesystem::path& path, std::optional<DType> quantize);
  // zeros, for tests; with frozen_linears the linear layers get no storage here (load_frozen).
  explicit TrainableModel(const ModelConfig& config, bool frozen_linears = false);
  bool frozen_base() const { return !frozen_storage_.empty(); }

  // Writes an HF model directory into dir (created): config.json, model.safetensors in F32 (the
  // exact training weights), and generation_config.json plus tokenizer files copied from
  // source_dir. Each file is written to a temp name and renamed; config.json comes last. With
  // adapters: the adapter as peft saves it (adapter_model.safetensors in F32, then
  // adapter_config.json) plus the tokenizer files.
  void save(const std::filesystem::path& dir, const std::filesystem::path& source_dir) const;
  // Replaces the trainable weights with those of a directory written by save() (same config),
  // e.g. a checkpoint: the whole model, or with adapters the adapter.
  void load_weights(const std::filesystem::path& dir);

  // Adds an adapter's s·B·A to the weights it adapts (a model without adapters of its own). An
  // adapter on lm_head of a model with tied embeddings is refused: merging would untie them.
  void merge(const PeftAdapter& adapter);

  // Adds LoRA adapters on the config's modules and freezes everything else: A Kaiming-uniform
  // as peft draws it (bound 1/sqrt(in), from `seed`), B zero.
  void add_lora(const LoraConfig& c, uint64_t seed);
  const LoraConfig* lora() const { return lora_ ? &*lora_ : nullptr; }
  // The adapter on linear parameter i (A's and B's indices), or null: none, or disabled (the
  // DPO reference is the base with its adapters off).
  struct Adapter {
    size_t a, b;
    float scale;
  };
  const Adapter* adapter(size_t i) const {
    return adapters_enabled_ && i < adapter_of_.size() && adapter_of_[i] >= 0 ? &adapters_[size_t(adapter_of_[i])] : nullptr;
  }
  void set_adapters_enabled(bool on) { adapters_enabled_ = on; }
  // Keys the adapters' dropout masks: set per micro-batch, so a step's masks can be drawn again
  // (gradient checkpointing, resumption) and differ from step to step.
  uint64_t dropout_seed = 0;
  // A frozen base's weights packed for the bf16 GEMM (W and its transpose), made by the first bf16
  // training pass and kept: the base never changes, and packing ~1B weights twice per batch cost a
  // LoRA step time and page faults.
  struct Bf16Weights {
    std::vector<Bf16Panels> w, wt;  // by parameter index; empty but for the linear layers
  };
  mutable std::shared_ptr<const Bf16Weights> frozen_bf16;
  // The trained weights packed the same way by the optimizer while it updated them, 16 rows at a
  // time from cache (bf16 training without adapters): the next pass takes them instead of packing
  // every weight again from memory. Dropped by every access that can change the weights.
  std::shared_ptr<const Bf16Weights> trained_bf16() const { return trained_bf16_; }
  void set_trained_bf16(std::shared_ptr<const Bf16Weights> p) { trained_bf16_ = std::move(p); }
  // The linear layers' parameter indices: lm_head, then each layer's q k v o gate up down.
  std::vector<size_t> linears() const;
  // Off: the adapters run without dropout in training passes too (TRL's DPO disable_dropout).
  bool adapter_dropout = true;
  // The trainable parameters' weights, laid out as grads(): weights(), or with adapters theirs
  // (kept apart, so adding them never copies the base).
  float* trainable_weights() {
    trained_bf16_.reset();
    return lora_ ? adapter_weights_.data() : weights_.data();
  }
  size_t trainable_numel() const { return lora_ ? adapter_weights_.size() : weights_.size(); }

  const ModelConfig& config() const { return config_; }
  const std::vector<ParamInfo>& params() const { return params_; }
  // Parameters of the model, a frozen base's and adapters' included.
  size_t num_parameters() const;
  std::vector<float>& weights() {
    trained_bf16_.reset();
    return weights_;
  }
  const std::vector<float>& weights() const { return weights_; }
  // The trainable parameters' gradients; empty until the first zero_grads(). Those released by
  // release_grads() are zeroed here first. grads() is for code that may write any of them;
  // read_grads() for code that only reads them.
  Buffer& grads() {
    zero_released_grads();
    embed_sparse_ = false;
    return grads_;
  }
  const Buffer& read_grads() {
    zero_released_grads();
    return grads_;
  }
  void zero_grads();
  // After an optimizer step: the gradients count as zero without being cleared. The next write
  // to each either stores it whole (grad_to_store) or, through grad(), adds to zeros made then —
  // the optimizer's clearing pass (~1/9 of its memory traffic) and the first products' reads of
  // the zeros are saved.
  void release_grads() { released_.assign(params_.size(), 1); }

  // Index of the tensor with that HF name (Error if absent).
  size_t index(const std::string& name) const;
  const float* weight(size_t i) const { return data(i); }
  // Null for a frozen parameter.
  float* grad(size_t i) {
    if (!params_[i].trainable) return nullptr;
    if (released(i)) zero_released_grad(i);
    if (i == embed_) embed_sparse_ = false;
    return grads_.data() + params_[i].grad_offset;
  }
  // For a product that writes parameter i's whole gradient: where, and whether to add to it
  // (false: it holds no gradient yet, store over it).
  float* grad_to_store(size_t i, bool* accumulate) {
    if (!params_[i].trainable) return nullptr;
    *accumulate = !released(i);
    if (released(i)) released_[i] = 0;
    if (i == embed_) embed_sparse_ = false;
    return grads_.data() + params_[i].grad_offset;
  }
  // The embedding's gradient, for adding to the rows of tokens ids[0, n) alone: the rows that may
  // hold values are tracked, so that clearing a released gradient zeroes those rows (not the whole
  // vocabulary's 65 MB at 32000 x 512) and the optimizer reads no others.
  float* embedding_grad_rows(const int* ids, int64_t n);
  // The rows of the embedding's gradient that may be non-zero, in no order, where it is known
  // (written only by embedding_grad_rows since it was last zero); else null.
  const std::vector<int32_t>* embedding_grad_nonzero_rows() const {
    return embed_sparse_ && params_[embed_].trainable ? &embed_rows_ : nullptr;
  }
  // A 2-D parameter as the Matrix the kernels take (a frozen base's in its stored type).
  Matrix matrix(size_t i) const;

  // Parameter indices of one layer / of the embedding, final norm and lm_head (the embedding's
  // when tied), in the order model_tensor_shapes lists them.
  struct Layer {
    size_t q, k, v, o, gate, up, down, input_norm, post_norm;
  };
  const std::vector<Layer>& layers() const { return layers_; }
  size_t embed() const { return embed_; }
  size_t final_norm() const { return final_norm_; }
  size_t lm_head() const { return lm_head_; }

 private:
  ModelConfig config_;
  std::vector<ParamInfo> params_;
  bool released(size_t i) const { return !released_.empty() && released_[i]; }
  void zero_released_grad(size_t i);
  void zero_released_grads();
  void track_embedding_rows();
  std::vector<char> released_;  // by parameter: its gradient counts as zero (release_grads)
  // Whether embed_rows_ holds every row of the embedding's gradient that may be non-zero (rows
  // marked in embed_marked_); false once any other code may have written it.
  bool embed_sparse_ = false;
  std::vector<int32_t> embed_rows_;
  std::vector<char> embed_marked_;
  std::vector<float> weights_;  // the base's (all but adapters)
  Buffer grads_;
  std::vector<Layer> layers_;
  size_t embed_ = 0, final_norm_ = 0, lm_head_ = 0;
  std::vector<float> adapter_weights_;
  const float* data(size_t i) const {
    return lora_ && params_[i].trainable ? adapter_weights_.data() + params_[i].grad_offset : weights_.data() + params_[i].offset;
  }
  float* data(size_t i) { return const_cast<float*>(std::as_const(*this).data(i)); }
  std::vector<Matrix> frozen_;  // by parameter index: a frozen base's linear layers (data null otherwise)
  std::vector<std::shared_ptr<HugeBuffer>> frozen_storage_;
  std::optional<LoraConfig> lora_;
  std::vector<Adapter> adapters_;
  std::vector<int> adapter_of_;  // by parameter index: index into adapters_, or -1
  bool adapters_enabled_ = true;
  std::shared_ptr<const Bf16Weights> trained_bf16_;
};

}  // namespace zephyr

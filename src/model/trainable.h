// A model for training: every parameter in fp32 in one flat buffer, gradients in another of the
// same layout (one allreduce per step when training spans machines), addressed by HF names.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "model/config.h"

namespace zephyr {

struct ParamInfo {
  std::string name;  // HF tensor name
  std::vector<int64_t> shape;
  size_t offset = 0, numel = 0;
};

class TrainableModel {
 public:
  // Reads an HF model directory (F32/BF16/F16 weights, widened to fp32); errors as Model::load.
  static TrainableModel load(const std::filesystem::path& dir);
  explicit TrainableModel(const ModelConfig& config);  // zeros, for tests

  // Writes an HF model directory into dir (created): config.json, model.safetensors in F32 (the
  // exact training weights), and generation_config.json plus tokenizer files copied from
  // source_dir. Each file is written to a temp name and renamed; config.json comes last.
  void save(const std::filesystem::path& dir, const std::filesystem::path& source_dir) const;
  // Replaces the weights with those of an HF directory (same config), e.g. a checkpoint.
  void load_weights(const std::filesystem::path& dir);

  const ModelConfig& config() const { return config_; }
  const std::vector<ParamInfo>& params() const { return params_; }
  std::vector<float>& weights() { return weights_; }
  const std::vector<float>& weights() const { return weights_; }
  std::vector<float>& grads() { return grads_; }
  const std::vector<float>& grads() const { return grads_; }
  void zero_grads();

  // Index of the tensor with that HF name (Error if absent).
  size_t index(const std::string& name) const;
  const float* weight(size_t i) const { return weights_.data() + params_[i].offset; }
  float* grad(size_t i) { return grads_.data() + params_[i].offset; }
  // A 2-D parameter as the Matrix the kernels take.
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
  std::vector<float> weights_, grads_;
  std::vector<Layer> layers_;
  size_t embed_ = 0, final_norm_ = 0, lm_head_ = 0;
};

}  // namespace zephyr

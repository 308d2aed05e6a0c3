// The model's tensors under their HF names, each checked for presence, dtype and shape, used in
// place from the mapped safetensors (norm weights are widened to fp32 once; they are tiny).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/model_dir.h"
#include "kernels/matmul.h"
#include "model/config.h"

namespace zephyr {

struct LayerWeights {
  std::vector<float> input_norm, post_attention_norm;
  Matrix q, k, v, o, gate, up, down;
};

struct ModelWeights {
  Matrix embed, lm_head;  // lm_head == embed when tie_word_embeddings
  std::vector<float> final_norm;
  std::vector<LayerWeights> layers;
};

// A loaded model: its config, generation defaults and weights (which point into `files`).
struct Model {
  ModelConfig config;
  json generation_config;
  std::filesystem::path dir;
  ModelWeights weights;
  std::shared_ptr<ModelDir> files;

  // Opens an HF model directory; any missing tensor, wrong shape or unsupported dtype is an
  // Error naming the file and the tensor.
  static Model load(const std::filesystem::path& path);
  // The EOS ids to stop at: generation_config.json's, else config.json's.
  std::vector<int64_t> eos_token_ids() const;
};

}  // namespace zephyr

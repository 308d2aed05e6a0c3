// The model's tensors under their HF names, each checked for presence, dtype and shape. Matrices
// that every token streams are copied once into huge-page memory in their stored dtype, with the
// projections that read the same input packed together (q|k|v, gate|up): one longer stream per
// input instead of three short ones. The embedding stays in the mapped file (one row per token);
// norm weights are widened to fp32.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/huge_buffer.h"
#include "io/gguf.h"
#include "io/model_dir.h"
#include "kernels/matmul.h"
#include "model/config.h"
#include "model/lora.h"

namespace zephyr {

struct LayerWeights {
  std::vector<float> input_norm, post_attention_norm;
  StackedMatrix qkv;      // rows: q_proj, then k_proj, then v_proj
  Matrix o;
  StackedMatrix gate_up;  // rows: gate_proj, then up_proj
  Matrix down;
};

struct ModelWeights {
  Matrix embed, lm_head;  // with tie_word_embeddings both read the same rows
  std::vector<float> final_norm;
  std::vector<LayerWeights> layers;
  std::vector<std::shared_ptr<HugeBuffer>> storage;  // owns the copied matrices
};

struct ServedAdapter;

// A loaded model: its config, generation defaults and weights (which point into `files`).
struct Model {
  ModelConfig config;
  json generation_config;
  std::filesystem::path dir;
  ModelWeights weights;
  std::shared_ptr<ModelDir> files;  // an HF directory's weights, or
  std::shared_ptr<GgufFile> gguf;   // a GGUF file (then `dir` is the file)
  // A LoRA adapter every sequence runs through unless it names another: kept beside the weights
  // (the base keeps its type; its matrices are not copied) rather than merged into them.
  std::shared_ptr<const ServedAdapter> adapter;

  // Opens an HF model directory or a GGUF file; any missing tensor, wrong shape or unsupported
  // dtype is an Error naming the file and the tensor. With an adapter: see `adapter`.
  static Model load(const std::filesystem::path& path, const PeftAdapter* adapter = nullptr);
  // The EOS ids to stop at: generation_config.json's, else config.json's.
  std::vector<int64_t> eos_token_ids() const;
};

}  // namespace zephyr

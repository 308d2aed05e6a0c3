// A randomly initialised model directory in HF layout (normal(0, 0.02) weights, norms at 1, as
// transformers' _init_weights does), for tests, benchmarks and the tiny recipe.
#pragma once
#include <cstdint>
#include <filesystem>

#include "core/dtype.h"
#include "model/config.h"

namespace zephyr {

struct InitOptions {
  ModelConfig config;
  DType dtype = DType::F32;
  uint64_t seed = 0;
  int shards = 1;  // >1 writes model-0000k-of-0000n.safetensors + index, as large checkpoints are
  std::filesystem::path tokenizer;  // tokenizer.json or a directory with it; copied when set
};

// The vocabulary size (when 0) and the BOS/EOS ids from a tokenizer.json or a directory with one;
// an Error (field "vocab") when vocab_size is set below the tokenizer's.
void fill_from_tokenizer(ModelConfig& config, const std::filesystem::path& tokenizer);

// Writes the model to `out` (created; must not already hold a model). Generation is split into
// fixed blocks with their own seeds, so the weights do not depend on the thread count.
void init_model(const std::filesystem::path& out, const InitOptions& options);

// The HF names and shapes of every tensor of the config, in the order transformers lists them.
std::vector<std::pair<std::string, std::vector<int64_t>>> model_tensor_shapes(const ModelConfig& c);

}  // namespace zephyr

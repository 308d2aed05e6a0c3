// The network's hyperparameters, read from and written to a Hugging Face config.json
// (MistralForCausalLM / LlamaForCausalLM — Llama is the same network without a sliding window).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/json_file.h"

namespace zephyr {

struct ModelConfig {
  std::string architecture = "MistralForCausalLM";
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 32768;
  int64_t sliding_window = 0;  // 0: attend to the whole past
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "bfloat16";

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Parameters of the whole model (embedding and lm_head counted once when tied).
  int64_t num_parameters() const;

  // Checks ranges and divisibility; `where` prefixes errors (usually the config file).
  void validate(const std::string& where) const;

  static ModelConfig from_json(const json& j, const std::string& where);
  static ModelConfig load(const std::filesystem::path& config_json);
  // config.json as transformers writes it for this architecture.
  json to_json() const;
  // generation_config.json's token ids, as transformers derives it from the config.
  json generation_json() const;
};

}  // namespace zephyr

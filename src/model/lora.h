// LoRA adapters (Hu et al. 2021) as peft defines and stores them. A targeted linear layer
// W [out, in] computes W x + s · B (A dropout(x)) with A [r, in], B [out, r] and
// s = alpha / r (alpha / sqrt(r) with rsLoRA); peft starts A Kaiming-uniform and B at zero, so a
// new adapter changes nothing. On disk: adapter_config.json + adapter_model.safetensors with
// tensors named base_model.model.<module>.lora_A.weight / .lora_B.weight.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/json_file.h"

namespace zephyr {

struct LoraConfig {
  int64_t r = 16;
  double alpha = 32, dropout = 0.05;  // TRL's ModelConfig defaults
  bool rslora = false;
  std::vector<std::string> targets = {"q_proj", "v_proj"};  // peft's default for Llama/Mistral

  float scale() const;
  // r >= 1, dropout in [0, 1), targets known; errors name `where`.
  void validate(const std::string& where) const;
};

// The module kinds a recipe's lora_target_modules names: "all-linear" (peft's: every linear
// layer but the output head) or a list of q_proj k_proj v_proj o_proj gate_proj up_proj
// down_proj lm_head. Anything else is an Error naming `where`.
std::vector<std::string> lora_targets(const std::vector<std::string>& names, const std::string& where);

// The modules a config adapts in a model of num_layers layers, as HF module names
// ("model.layers.0.self_attn.q_proj", "lm_head"), in the model's tensor order.
std::vector<std::string> lora_modules(const LoraConfig& c, int64_t num_layers);

// A layer's projection as HF names the module: (0, "q_proj") -> "model.layers.0.self_attn.q_proj".
std::string layer_module(int64_t layer, const std::string& kind);

// "model.layers.0.self_attn.q_proj" + 'A' -> "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".
std::string peft_tensor_name(const std::string& module, char which);

// adapter_config.json as peft writes it for this config.
json peft_config_json(const LoraConfig& c, const std::string& base_model);

// An adapter directory written by peft or by zephyr: its config and every module's A and B in
// fp32. Refuses what it cannot reproduce exactly (DoRA, per-module rank or alpha patterns,
// biases, fan_in_fan_out, embedding adapters) with an Error naming the file.
struct PeftAdapter {
  struct Pair {
    int64_t in = 0, out = 0;
    std::vector<float> a, b;  // [r, in], [out, r]
    // peft's copy of the module's base weight (it saves lm_head's with save_embedding_layers);
    // as in peft, it replaces the base's when merged. Empty when absent.
    std::vector<float> base_weight;
  };
  std::filesystem::path dir;
  LoraConfig config;
  std::string base_model;
  std::map<std::string, Pair> modules;  // by HF module name

  static PeftAdapter load(const std::filesystem::path& dir);
  // w [rows, cols] (the module's weight, HF layout) += s · B · A when `weight_name`
  // ("<module>.weight") has an adapter; returns whether it had. Shapes are checked.
  bool merge_into(const std::string& weight_name, float* w, int64_t rows, int64_t cols) const;
  bool adapts(const std::string& weight_name) const;
};

// True when dir holds an adapter (adapter_config.json) rather than a model.
bool is_adapter_dir(const std::filesystem::path& dir);

}  // namespace zephyr

// A training recipe: YAML with the alignment-handbook's key names, overridable from the command
// line (--key value), so a published recipe reads the same here.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "model/lora.h"

namespace zephyr {

struct TrainConfig {
  std::string model_name_or_path, dataset_path, eval_dataset_path, output_dir;
  double eval_split_ratio = 0.0;  // held out of dataset_path when no eval_dataset_path
  double learning_rate = 2e-5, weight_decay = 0.0, adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;
  std::string lr_scheduler_type = "linear";
  double warmup_ratio = 0.0;
  int64_t warmup_steps = 0;
  double num_train_epochs = 3.0;
  int64_t max_steps = -1;
  int64_t per_device_train_batch_size = 8, per_device_eval_batch_size = 8, gradient_accumulation_steps = 1;
  int64_t max_seq_length = 1024;
  bool packing = false, gradient_checkpointing = false, bf16 = false, strict = false;
  int64_t logging_steps = 10, eval_steps = 0, save_steps = 500, save_total_limit = 0;
  uint64_t seed = 42;
  double ddp_timeout = 1800;  // seconds a rank waits for the others in one collective (MPI runs)
  // DPO (TRL's DPOConfig keys); max_length is an alias of max_seq_length.
  double beta = 0.1, label_smoothing = 0.0;
  std::string loss_type = "sigmoid", ref_model;
  int64_t max_prompt_length = 512;
  bool disable_dropout = true;  // TRL's DPOConfig: the adapters' dropout is off in DPO
  // LoRA (TRL's ModelConfig keys, as the handbook's recipes write them).
  bool use_peft = false;
  bool load_in_4bit = false;  // QLoRA: the HF base's linear layers quantized to Q4_0 as they load
  LoraConfig lora;
  std::string source;  // the YAML file, for messages

  // Reads FILE (may be empty: all from overrides) then applies overrides; an unknown key is an
  // Error naming the file, line and key, except keys of the handbook that do not apply here
  // (hub and logging services, torch options), which are listed in `ignored`.
  static TrainConfig load(const std::filesystem::path& file, const std::vector<std::pair<std::string, std::string>>& overrides,
                          std::vector<std::string>* ignored = nullptr);
  void validate() const;
};

// Splits leftover CLI arguments "--key value --flag ..." into pairs (a flag without a value gets
// "true"); an argument that is not a --key is an Error.
std::vector<std::pair<std::string, std::string>> parse_overrides(const std::vector<std::string>& args);

}  // namespace zephyr

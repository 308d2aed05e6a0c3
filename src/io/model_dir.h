// A Hugging Face model directory: config.json, generation_config.json and the weights as one
// model.safetensors or shards listed by model.safetensors.index.json.
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "io/safetensors.h"

namespace zephyr {

// What a model or adapter path is called: its last component ("runs/lora/" -> "lora"), a .gguf
// file's without the extension.
std::string path_name(const std::filesystem::path& path);

class ModelDir {
 public:
  // Opens DIR (or the directory of a given model.safetensors / config.json) and maps its weights.
  explicit ModelDir(const std::filesystem::path& path);
  // The model directory PATH names (itself, or the directory of a file in it); an Error when it
  // is not one (no config.json).
  static std::filesystem::path resolve(const std::filesystem::path& path);

  const std::filesystem::path& dir() const { return dir_; }
  const json& config() const { return config_; }
  const json& generation_config() const { return generation_config_; }  // {} when absent

  // The tensor with that HF name, or nullptr. `file_of` names the file holding it for errors.
  const TensorInfo* find(const std::string& name) const;
  std::string file_of(const std::string& name) const;
  std::vector<std::string> tensor_names() const;

 private:
  std::filesystem::path dir_;
  json config_, generation_config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<const TensorInfo*, const SafetensorsFile*>> tensors_;
};

}  // namespace zephyr

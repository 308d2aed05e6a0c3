#include "io/model_dir.h"

#include "core/error.h"

namespace fs = std::filesystem;

namespace zephyr {

std::string path_name(const fs::path& path) {
  fs::path p = path;
  while (p.has_parent_path() && p.filename().empty()) p = p.parent_path();  // "dir/" names "dir"
  return (p.extension() == ".gguf" ? p.stem() : p.filename()).string();
}

fs::path ModelDir::resolve(const fs::path& path) {
  fs::path dir = fs::is_regular_file(path) ? path.parent_path() : path;
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir)) fail(path.string(), "no such model directory");
  if (!fs::exists(dir / "config.json")) fail(dir.string(), "not a model directory: config.json is missing");
  return dir;
}

ModelDir::ModelDir(const fs::path& path) : dir_(resolve(path)) {
  config_ = read_json_file(dir_ / "config.json");
  const fs::path gen_path = dir_ / "generation_config.json";
  generation_config_ = fs::exists(gen_path) ? read_json_file(gen_path) : json::object();

  std::vector<fs::path> shard_paths;
  const fs::path single = dir_ / "model.safetensors", index = dir_ / "model.safetensors.index.json";
  if (fs::exists(index)) {
    const json idx = read_json_file(index);
    if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
      fail(index.string(), "expected an object \"weight_map\": {tensor: file}");
    std::map<std::string, size_t> seen;
    for (auto& [name, file] : idx["weight_map"].items()) {
      if (!file.is_string()) fail(index.string(), "weight_map[\"" + name + "\"] is not a file name");
      const std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f == "..")
        fail(index.string(), "weight_map[\"" + name + "\"] names a file outside the directory: " + f);
      if (seen.emplace(f, shard_paths.size()).second) shard_paths.push_back(dir_ / f);
    }
    for (auto& p : shard_paths)
      if (!fs::exists(p)) fail(index.string(), "lists shard " + p.filename().string() + ", which is missing");
  } else if (fs::exists(single)) {
    shard_paths.push_back(single);
  } else {
    fail(dir_.string(), "no weights: expected model.safetensors or model.safetensors.index.json");
  }
  for (auto& p : shard_paths) {
    files_.push_back(std::make_unique<SafetensorsFile>(p));
    for (auto& [name, info] : files_.back()->tensors()) {
      auto [it, fresh] = tensors_.emplace(name, std::make_pair(&info, files_.back().get()));
      if (!fresh)
        fail(p.string(), "tensor '" + name + "' is also in " + it->second.second->path().filename().string());
    }
  }
}

const TensorInfo* ModelDir::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second.first;
}

std::string ModelDir::file_of(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? (dir_ / "model.safetensors").string() : it->second.second->path().string();
}

std::vector<std::string> ModelDir::tensor_names() const {
  std::vector<std::string> names;
  for (auto& [n, _] : tensors_) names.push_back(n);
  return names;
}

}  // namespace zephyr

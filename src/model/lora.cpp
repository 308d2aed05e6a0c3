#include "model/lora.h"

#include <algorithm>
#include <cblas.h>

#include <cmath>

#include "core/error.h"
#include "io/safetensors.h"

namespace zephyr {

namespace {

const std::vector<std::string> kLayerKinds = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

constexpr const char* kPrefix = "base_model.model.";

}  // namespace

std::string layer_module(int64_t layer, const std::string& kind) {
  const bool attn = kind == "q_proj" || kind == "k_proj" || kind == "v_proj" || kind == "o_proj";
  return "model.layers." + std::to_string(layer) + (attn ? ".self_attn." : ".mlp.") + kind;
}

float LoraConfig::scale() const { return float(rslora ? alpha / std::sqrt(double(r)) : alpha / double(r)); }

void LoraConfig::validate(const std::string& where) const {
  if (r < 1) fail(where, "lora_r must be at least 1, got " + std::to_string(r));
  if (!std::isfinite(alpha)) fail(where, "lora_alpha must be a finite number");
  if (!(dropout >= 0 && dropout < 1)) fail(where, "lora_dropout must be in [0, 1)");
  if (targets.empty()) fail(where, "lora_target_modules names no module");
  lora_targets(targets, where);
}

std::vector<std::string> lora_targets(const std::vector<std::string>& names, const std::string& where) {
  std::vector<std::string> out;
  for (const std::string& n : names) {
    if (n == "all-linear") {
      for (auto& k : kLayerKinds)
        if (std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
      continue;
    }
    if (n == "embed_tokens")
      fail(where, "embed_tokens (an embedding adapter) is not supported; target the linear layers and lm_head");
    if (n != "lm_head" && std::find(kLayerKinds.begin(), kLayerKinds.end(), n) == kLayerKinds.end())
      fail(where, "'" + n +
                      "' is not a linear layer of this model (expected all-linear or some of q_proj k_proj v_proj o_proj "
                      "gate_proj up_proj down_proj lm_head)");
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  return out;
}

std::vector<std::string> lora_modules(const LoraConfig& c, int64_t num_layers) {
  const std::vector<std::string> kinds = lora_targets(c.targets, "lora_target_modules");
  std::vector<std::string> mods;
  for (int64_t l = 0; l < num_layers; ++l)
    for (const std::string& k : kLayerKinds)
      if (std::find(kinds.begin(), kinds.end(), k) != kinds.end()) mods.push_back(layer_module(l, k));
  if (std::find(kinds.begin(), kinds.end(), "lm_head") != kinds.end()) mods.push_back("lm_head");
  return mods;
}

std::string peft_tensor_name(const std::string& module, char which) {
  return kPrefix + module + ".lora_" + which + ".weight";
}

json peft_config_json(const LoraConfig& c, const std::string& base_model) {
  return {{"alpha_pattern", json::object()},
          {"auto_mapping", nullptr},
          {"base_model_name_or_path", base_model},
          {"bias", "none"},
          {"fan_in_fan_out", false},
          {"inference_mode", true},
          {"init_lora_weights", true},
          {"layers_pattern", nullptr},
          {"layers_to_transform", nullptr},
          {"lora_alpha", c.alpha},
          {"lora_dropout", c.dropout},
          {"modules_to_save", nullptr},
          {"peft_type", "LORA"},
          {"r", c.r},
          {"rank_pattern", json::object()},
          {"revision", nullptr},
          {"target_modules", lora_targets(c.targets, "lora_target_modules")},
          {"task_type", "CAUSAL_LM"},
          {"use_dora", false},
          {"use_rslora", c.rslora}};
}

bool is_adapter_dir(const std::filesystem::path& dir) {
  return std::filesystem::is_directory(dir) && std::filesystem::exists(dir / "adapter_config.json");
}

PeftAdapter PeftAdapter::load(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  PeftAdapter a;
  a.dir = dir;
  const fs::path cfg_file = dir / "adapter_config.json";
  if (!fs::is_directory(dir)) fail(dir.string(), "is not an adapter directory (expected adapter_config.json and adapter_model.safetensors)");
  if (!fs::exists(cfg_file)) fail(dir.string(), "has no adapter_config.json (is it a LoRA adapter as peft saves one?)");
  const json j = read_json_file(cfg_file);
  const std::string where = cfg_file.string();
  if (!j.is_object()) fail(where, "expected a JSON object");
  auto get = [&](const char* key) -> const json* { return j.contains(key) && !j[key].is_null() ? &j[key] : nullptr; };
  if (const json* t = get("peft_type"); !t || !t->is_string() || t->get<std::string>() != "LORA")
    fail(where, "\"peft_type\": expected \"LORA\"");
  const json* r = get("r");
  if (!r || !r->is_number_integer() || r->get<int64_t>() < 1) fail(where, "\"r\": expected a positive integer");
  a.config.r = r->get<int64_t>();
  const json* alpha = get("lora_alpha");
  if (alpha && !alpha->is_number()) fail(where, "\"lora_alpha\": expected a number");
  a.config.alpha = alpha ? alpha->get<double>() : 8.0;  // peft's default
  if (const json* d = get("lora_dropout")) {
    if (!d->is_number()) fail(where, "\"lora_dropout\": expected a number");
    a.config.dropout = d->get<double>();
  } else {
    a.config.dropout = 0;
  }
  if (const json* rs = get("use_rslora")) {
    if (!rs->is_boolean()) fail(where, "\"use_rslora\": expected true or false");
    a.config.rslora = rs->get<bool>();
  }
  if (const json* b = get("base_model_name_or_path"); b && b->is_string()) a.base_model = b->get<std::string>();
  // What would change the computation in ways this reader does not reproduce.
  for (const char* key : {"rank_pattern", "alpha_pattern"})
    if (const json* p = get(key); p && !(p->is_object() && p->empty()))
      fail(where, std::string("\"") + key + "\": per-module ranks or alphas are not supported");
  if (const json* d = get("use_dora"); d && d->is_boolean() && d->get<bool>()) fail(where, "\"use_dora\": DoRA adapters are not supported");
  if (const json* f = get("fan_in_fan_out"); f && f->is_boolean() && f->get<bool>())
    fail(where, "\"fan_in_fan_out\": true is for GPT-2 style Conv1D layers, not this architecture");
  if (const json* b = get("bias"); b && !(b->is_string() && b->get<std::string>() == "none"))
    fail(where, "\"bias\": only \"none\" is supported");
  if (const json* m = get("modules_to_save"); m && !(m->is_array() && m->empty()))
    fail(where, "\"modules_to_save\": adapters carrying full copies of modules are not supported");

  const fs::path weights = dir / "adapter_model.safetensors";
  if (!fs::exists(weights)) {
    if (fs::exists(dir / "adapter_model.bin"))
      fail((dir / "adapter_model.bin").string(), "is a pickle; save the adapter with safe_serialization (adapter_model.safetensors)");
    fail(weights.string(), "missing");
  }
  const SafetensorsFile f(weights);
  const std::string prefix = kPrefix;
  std::vector<std::string> kinds;
  for (auto& [name, t] : f.tensors()) {
    const size_t bl = name.rfind(".base_layer.weight");
    if (name.rfind(prefix, 0) == 0 && bl != std::string::npos && bl + 18 == name.size()) {
      Pair& p = a.modules[name.substr(prefix.size(), bl - prefix.size())];
      if (t.shape.size() != 2) fail(weights.string(), "tensor '" + name + "' must be 2-D");
      p.base_weight.resize(size_t(t.numel()));
      to_f32(t.float_dtype(weights.string()), t.data, p.base_weight.data(), p.base_weight.size());
      continue;
    }
    const size_t la = name.rfind(".lora_A.weight"), lb = name.rfind(".lora_B.weight");
    const bool is_a = la != std::string::npos && la + 14 == name.size();
    const bool is_b = lb != std::string::npos && lb + 14 == name.size();
    if (name.rfind(prefix, 0) != 0 || !(is_a || is_b))
      fail(weights.string(), "tensor '" + name + "' is not a LoRA A or B weight (expected base_model.model.<module>.lora_A.weight)");
    const std::string module = name.substr(prefix.size(), (is_a ? la : lb) - prefix.size());
    if (t.shape.size() != 2) fail(weights.string(), "tensor '" + name + "' must be 2-D");
    Pair& p = a.modules[module];
    std::vector<float>& dst = is_a ? p.a : p.b;
    dst.resize(size_t(t.numel()));
    to_f32(t.float_dtype(weights.string()), t.data, dst.data(), dst.size());
    if (is_a) {
      if (t.shape[0] != a.config.r) fail(weights.string(), "tensor '" + name + "' has " + std::to_string(t.shape[0]) + " rows, r is " + std::to_string(a.config.r));
      p.in = t.shape[1];
    } else {
      if (t.shape[1] != a.config.r) fail(weights.string(), "tensor '" + name + "' has " + std::to_string(t.shape[1]) + " columns, r is " + std::to_string(a.config.r));
      p.out = t.shape[0];
    }
    std::string kind = module.substr(module.rfind('.') + 1);
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) kinds.push_back(kind);
  }
  if (a.modules.empty()) fail(weights.string(), "holds no LoRA weights");
  for (auto& [m, p] : a.modules)
    if (p.a.empty() || p.b.empty()) fail(weights.string(), "module '" + m + "' has only one of lora_A and lora_B");
  a.config.targets = lora_targets(kinds, weights.string());
  return a;
}

bool PeftAdapter::adapts(const std::string& weight_name) const {
  const size_t dot = weight_name.rfind(".weight");
  return dot != std::string::npos && dot + 7 == weight_name.size() && modules.count(weight_name.substr(0, dot));
}

bool PeftAdapter::merge_into(const std::string& weight_name, float* w, int64_t rows, int64_t cols) const {
  if (!adapts(weight_name)) return false;
  const std::string module = weight_name.substr(0, weight_name.rfind(".weight"));
  const Pair& p = modules.at(module);
  if (p.out != rows || p.in != cols)
    fail((dir / "adapter_model.safetensors").string(),
         "module '" + module + "' adapts a [" + std::to_string(p.out) + ", " + std::to_string(p.in) + "] weight, the model's is [" +
             std::to_string(rows) + ", " + std::to_string(cols) + "] (an adapter for another model?)");
  if (!p.base_weight.empty()) {
    if (p.base_weight.size() != size_t(rows * cols))
      fail((dir / "adapter_model.safetensors").string(), "the saved base weight of '" + module + "' has the wrong size");
    std::copy(p.base_weight.begin(), p.base_weight.end(), w);
  }
  // W += s·B·A (BLAS: a 7B model's 224 modules would take minutes in a plain loop).
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(cols), int(config.r), config.scale(), p.b.data(),
              int(config.r), p.a.data(), int(cols), 1.0f, w, int(cols));
  return true;
}

}  // namespace zephyr

#include "cli/options.h"

#include <cstdio>
#include <filesystem>
#include <map>
#include <random>

#include "core/error.h"
#include "core/parallel.h"
#include "generate/generation_defaults.h"
#include "io/model_dir.h"

namespace zephyr::cli {

void ThreadsFlag::add(CLI::App* cmd) {
  cmd->add_option("-t,--threads", threads, "threads for the math (default: OMP_NUM_THREADS when set, else all cores)")->check(CLI::NonNegativeNumber);
}

void ThreadsFlag::apply() const { set_num_threads(threads); }

void ModelFlags::add(CLI::App* cmd, const std::string& help, bool several) {
  cmd->add_option("-m,--model", model, help)->required();
  const std::string what = "LoRA adapter directory (adapter_config.json + adapter_model.safetensors, as peft and zephyr's "
                           "use_peft training write it)";
  if (!several) {
    cmd->add_option("--lora", lora, what + ", applied beside the model's weights (W x + s·B·A x; the base keeps its type)");
    return;
  }
  cmd->add_option("--lora", beside,
                  what + ". One --lora DIR: every request runs through it (the model is served under the adapter's name). "
                         "--lora NAME=DIR, repeatable: each adapter is kept beside the base and a request's \"model\" picks "
                         "the base or one of them; requests for different adapters share batches")
      ->take_all()
      ->allow_extra_args(false);
}

namespace {
// "NAME=DIR" -> {NAME, DIR}; "DIR" (or a path that exists whole) -> {DIR's name, DIR}.
std::pair<std::string, std::string> named_adapter(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq != std::string::npos && eq > 0 && !std::filesystem::exists(spec)) return {spec.substr(0, eq), spec.substr(eq + 1)};
  return {path_name(spec), spec};
}
}  // namespace

std::vector<std::shared_ptr<const ServedAdapter>> ModelFlags::served_adapters(const Model& base) const {
  std::vector<std::shared_ptr<const ServedAdapter>> out;
  if (!lora.empty()) return out;  // the one adapter is the model's own
  for (const std::string& spec : beside) {
    auto [name, dir] = named_adapter(spec);
    if (name.empty()) fail("--lora", "'" + spec + "': expected NAME=DIR");
    for (const auto& a : out)
      if (a->name == name) fail("--lora", "two adapters are named '" + name + "'");
    const PeftAdapter adapter = PeftAdapter::load(dir);
    out.push_back(std::make_shared<const ServedAdapter>(ServedAdapter::make(name, adapter, base)));
    std::fprintf(stderr, "LoRA adapter %s as \"%s\" (r %lld, %zu modules) beside %s\n", dir.c_str(), name.c_str(),
                 (long long)adapter.config.r, adapter.modules.size(), model.c_str());
  }
  return out;
}

Model ModelFlags::load() {
  // One adapter without a name is the model's own, as in the other commands.
  if (beside.size() == 1 && (beside[0].find('=') == std::string::npos || std::filesystem::exists(beside[0]))) lora = beside[0];
  if (!beside.empty() && is_adapter_dir(model))
    fail(model, "is a LoRA adapter; give the base model with -m and the adapters with --lora");
  std::string adapter_dir = lora;
  if (is_adapter_dir(model)) {
    if (!lora.empty()) fail(model, "is a LoRA adapter; give the base model with -m and the adapter with --lora");
    adapter_dir = model;
  }
  if (adapter_dir.empty()) return Model::load(model);
  const PeftAdapter adapter = PeftAdapter::load(adapter_dir);
  if (adapter_dir == model) {
    if (adapter.base_model.empty() || !std::filesystem::exists(adapter.base_model))
      fail(model, "is a LoRA adapter whose base model (\"" + adapter.base_model +
                      "\" in adapter_config.json) is not here; give it with -m BASE --lora " + model);
    model = adapter.base_model;
  }
  Model m = Model::load(model, &adapter);
  std::fprintf(stderr, "LoRA adapter %s (r %lld, %zu modules) on %s\n", adapter_dir.c_str(),
               (long long)adapter.config.r, adapter.modules.size(), model.c_str());
  return m;
}

void SamplingFlags::add(CLI::App* cmd) {
  temp = cmd->add_option("--temp", given.temperature, "sampling temperature; 0 = greedy (default 0.7)");
  top_k = cmd->add_option("--top-k", given.top_k, "keep the k most likely tokens; 0 = off (default 50)");
  top_p = cmd->add_option("--top-p", given.top_p, "keep the smallest set with this much probability; 1 = off (default 0.95)");
  min_p = cmd->add_option("--min-p", given.min_p, "drop tokens below min-p x the top probability; 0 = off (default 0)");
  penalty = cmd->add_option("--repeat-penalty", given.repetition_penalty,
                            "divide the logits of tokens already seen (transformers' repetition_penalty; default 1 = off)");
  seed = cmd->add_option("--seed", given.seed, "random seed; the same seed gives the same output (default: random)");
}

SamplingParams SamplingFlags::resolve(const Model& model) const {
  SamplingParams p = sampling_defaults(model.generation_config);
  if (temp->count()) p.temperature = given.temperature;
  if (top_k->count()) p.top_k = given.top_k;
  if (top_p->count()) p.top_p = given.top_p;
  if (min_p->count()) p.min_p = given.min_p;
  if (penalty->count()) p.repetition_penalty = given.repetition_penalty;
  p.seed = seed->count() ? given.seed : std::random_device{}();
  try {
    p.validate();
  } catch (const Error& e) {  // the library names the setting: a flag the user typed, or the model's file
    static const std::map<std::string, std::pair<std::string, CLI::Option* SamplingFlags::*>> flags = {
        {"temperature", {"--temp", &SamplingFlags::temp}},       {"top_k", {"--top-k", &SamplingFlags::top_k}},
        {"top_p", {"--top-p", &SamplingFlags::top_p}},           {"min_p", {"--min-p", &SamplingFlags::min_p}},
        {"repetition_penalty", {"--repeat-penalty", &SamplingFlags::penalty}}};
    const auto it = flags.find(e.field());
    if (it == flags.end()) throw;
    if ((this->*(it->second.second))->count()) fail(it->second.first, e.reason());
    fail((model.dir / "generation_config.json").string() + ": " + e.field(), e.reason() + " (override it with " + it->second.first + ")");
  }
  return p;
}

}  // namespace zephyr::cli

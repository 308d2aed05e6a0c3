#include "train/train_config.h"


#include <functional>
#include <map>
#include <set>

#include "core/error.h"
#include "io/yaml_file.h"

namespace zephyr {

namespace {

// Keys of alignment-handbook recipes that have no meaning here; accepted and ignored.
const std::set<std::string> kIgnored = {
    "torch_dtype", "attn_implementation", "use_flash_attention_2", "model_revision", "trust_remote_code",
    "hub_model_id", "hub_strategy", "push_to_hub", "report_to", "run_name", "log_level", "logging_strategy",
    "logging_first_step", "evaluation_strategy", "eval_strategy", "save_strategy", "do_eval", "overwrite_output_dir",
    "remove_unused_columns", "dataset_mixer", "dataset_splits", "dataset_num_proc", "preprocessing_num_workers",
    "chat_template", "gradient_checkpointing_kwargs", "tf32", "optim", "dataset_kwargs",
    "dataset_text_field", "use_liger", "use_liger_kernel", "dataset_name", "dataset_config", "auto_insert_empty_system_msg",
    "lora_task_type", "bnb_4bit_quant_type", "use_bnb_nested_quant", "bnb_4bit_compute_dtype"};

// Keys whose YAML value may be a list: joined with commas, as the command line writes them.
const std::set<std::string> kListKeys = {"lora_target_modules", "lora_modules_to_save"};

std::vector<std::string> split_list(const std::string& v) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : v + ",") {
    if (ch == ',' || ch == ' ' || ch == '\t') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  return out;
}

using Setter = std::function<void(TrainConfig&, const std::string&, const std::string& where)>;

template <class T>
T parse_value(const std::string& v, const std::string& where);

template <>
double parse_value<double>(const std::string& v, const std::string& where) {
  try {
    size_t used = 0;
    const double d = std::stod(v, &used);
    if (used == v.size()) return d;
  } catch (const std::exception&) {
  }
  fail(where, "expected a number, got '" + v + "'");
}

template <>
int64_t parse_value<int64_t>(const std::string& v, const std::string& where) {
  try {
    size_t used = 0;
    const long long d = std::stoll(v, &used);
    if (used == v.size()) return d;
  } catch (const std::exception&) {
  }
  fail(where, "expected an integer, got '" + v + "'");
}

template <>
bool parse_value<bool>(const std::string& v, const std::string& where) {
  if (v == "true" || v == "True" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "False" || v == "0" || v == "no") return false;
  fail(where, "expected true or false, got '" + v + "'");
}

template <class T>
Setter set(T TrainConfig::*field) {
  return [field](TrainConfig& c, const std::string& v, const std::string& where) { c.*field = parse_value<T>(v, where); };
}

Setter set_string(std::string TrainConfig::*field) {
  return [field](TrainConfig& c, const std::string& v, const std::string&) { c.*field = v; };
}

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> s = {
      {"model_name_or_path", set_string(&TrainConfig::model_name_or_path)},
      {"dataset_path", set_string(&TrainConfig::dataset_path)},
      {"eval_dataset_path", set_string(&TrainConfig::eval_dataset_path)},
      {"output_dir", set_string(&TrainConfig::output_dir)},
      {"eval_split_ratio", set(&TrainConfig::eval_split_ratio)},
      {"learning_rate", set(&TrainConfig::learning_rate)},
      {"weight_decay", set(&TrainConfig::weight_decay)},
      {"adam_beta1", set(&TrainConfig::adam_beta1)},
      {"adam_beta2", set(&TrainConfig::adam_beta2)},
      {"adam_epsilon", set(&TrainConfig::adam_epsilon)},
      {"max_grad_norm", set(&TrainConfig::max_grad_norm)},
      {"lr_scheduler_type", set_string(&TrainConfig::lr_scheduler_type)},
      {"warmup_ratio", set(&TrainConfig::warmup_ratio)},
      {"warmup_steps", set(&TrainConfig::warmup_steps)},
      {"num_train_epochs", set(&TrainConfig::num_train_epochs)},
      {"max_steps", set(&TrainConfig::max_steps)},
      {"per_device_train_batch_size", set(&TrainConfig::per_device_train_batch_size)},
      {"per_device_eval_batch_size", set(&TrainConfig::per_device_eval_batch_size)},
      {"gradient_accumulation_steps", set(&TrainConfig::gradient_accumulation_steps)},
      {"max_seq_length", set(&TrainConfig::max_seq_length)},
      {"max_length", set(&TrainConfig::max_seq_length)},
      {"packing", set(&TrainConfig::packing)},
      {"gradient_checkpointing", set(&TrainConfig::gradient_checkpointing)},
      {"bf16", set(&TrainConfig::bf16)},
      {"strict", set(&TrainConfig::strict)},
      {"logging_steps", set(&TrainConfig::logging_steps)},
      {"eval_steps", set(&TrainConfig::eval_steps)},
      {"save_steps", set(&TrainConfig::save_steps)},
      {"save_total_limit", set(&TrainConfig::save_total_limit)},
      {"beta", set(&TrainConfig::beta)},
      {"label_smoothing", set(&TrainConfig::label_smoothing)},
      {"loss_type", set_string(&TrainConfig::loss_type)},
      {"ref_model", set_string(&TrainConfig::ref_model)},
      {"max_prompt_length", set(&TrainConfig::max_prompt_length)},
      {"ddp_timeout", set(&TrainConfig::ddp_timeout)},
      {"disable_dropout", set(&TrainConfig::disable_dropout)},
      {"use_peft", set(&TrainConfig::use_peft)},
      {"lora_r", [](TrainConfig& c, const std::string& v, const std::string& w) { c.lora.r = parse_value<int64_t>(v, w); }},
      {"lora_alpha", [](TrainConfig& c, const std::string& v, const std::string& w) { c.lora.alpha = parse_value<double>(v, w); }},
      {"lora_dropout", [](TrainConfig& c, const std::string& v, const std::string& w) { c.lora.dropout = parse_value<double>(v, w); }},
      {"use_rslora", [](TrainConfig& c, const std::string& v, const std::string& w) { c.lora.rslora = parse_value<bool>(v, w); }},
      {"lora_target_modules", [](TrainConfig& c, const std::string& v, const std::string& w) {
         c.lora.targets = lora_targets(split_list(v), w);
       }},
      {"lora_modules_to_save", [](TrainConfig&, const std::string& v, const std::string& w) {
         if (!split_list(v).empty() && v != "null")
           fail(w, "full copies of modules beside the adapters are not supported");
       }},
      {"use_dora", [](TrainConfig&, const std::string& v, const std::string& w) {
         if (parse_value<bool>(v, w)) fail(w, "DoRA adapters are not supported");
       }},
      {"load_in_8bit", [](TrainConfig&, const std::string& v, const std::string& w) {
         if (parse_value<bool>(v, w)) fail(w, "8-bit loading is not supported");
       }},
      {"load_in_4bit", set(&TrainConfig::load_in_4bit)},
      {"seed", [](TrainConfig& c, const std::string& v, const std::string& w) { c.seed = uint64_t(parse_value<int64_t>(v, w)); }},
  };
  return s;
}

void apply(TrainConfig& c, const std::string& key, const std::string& value, const std::string& where,
           std::vector<std::string>* ignored) {
  auto it = setters().find(key);
  if (it != setters().end()) return it->second(c, value, where + ": " + key);
  if (kIgnored.count(key)) {
    if (ignored) ignored->push_back(key);
    return;
  }
  fail(where, "unknown key '" + key + "'");
}

}  // namespace

TrainConfig TrainConfig::load(const std::filesystem::path& file, const std::vector<std::pair<std::string, std::string>>& overrides,
                              std::vector<std::string>* ignored) {
  TrainConfig c;
  if (!file.empty()) {
    c.source = file.string();
    const YAML::Node root = load_yaml_file(file.string());
    if (!root.IsMap()) fail(file.string(), "expected a mapping of recipe keys");
    reading_yaml(file.string(), [&] {
      for (auto it = root.begin(); it != root.end(); ++it) {
        const std::string key = it->first.as<std::string>();
        const std::string where = file.string() + ":" + std::to_string(it->first.Mark().line + 1);
        if (it->second.IsSequence() && kListKeys.count(key)) {
          std::string joined;
          const YAML::Node list = it->second;
          for (size_t k = 0; k < list.size(); ++k) {
            const YAML::Node item = list[k];
            if (!item.IsScalar()) fail(where, "'" + key + "' must be a list of names");
            if (!joined.empty()) joined += ',';
            joined += item.as<std::string>();
          }
          apply(c, key, joined, where, ignored);
          continue;
        }
        if (!it->second.IsScalar()) {
          if (kIgnored.count(key)) {
            if (ignored) ignored->push_back(key);
            continue;
          }
          fail(where, "'" + key + "' must be a single value");
        }
        apply(c, key, it->second.as<std::string>(), where, ignored);
      }
    });
  }
  for (auto& [k, v] : overrides) apply(c, k, v, "--" + k, ignored);
  return c;
}

void TrainConfig::validate() const {
  const std::string where = source.empty() ? "recipe" : source;
  if (model_name_or_path.empty()) fail(where, "model_name_or_path is required");
  if (dataset_path.empty()) fail(where, "dataset_path is required");
  if (output_dir.empty()) fail(where, "output_dir is required");
  if (!(learning_rate > 0)) fail(where, "learning_rate must be positive");
  if (per_device_train_batch_size < 1 || gradient_accumulation_steps < 1)
    fail(where, "per_device_train_batch_size and gradient_accumulation_steps must be at least 1");
  if (max_seq_length < 2) fail(where, "max_seq_length must be at least 2");
  if (max_steps <= 0 && !(num_train_epochs > 0)) fail(where, "set num_train_epochs > 0 or max_steps > 0");
  if (!(eval_split_ratio >= 0 && eval_split_ratio < 1)) fail(where, "eval_split_ratio must be in [0, 1)");
  if (logging_steps < 1) fail(where, "logging_steps must be at least 1");
  if (!(ddp_timeout > 0)) fail(where, "ddp_timeout must be a positive number of seconds");
  if (use_peft) lora.validate(where);
  if (load_in_4bit && !use_peft) fail(where, "load_in_4bit: a 4-bit base is frozen; train adapters on it (use_peft: true)");
}

std::vector<std::pair<std::string, std::string>> parse_overrides(const std::vector<std::string>& args) {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0 || a.size() == 2) fail(a, "expected --key value (a recipe key to override)");
    std::string key = a.substr(2), value = "true";
    const size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
      value = args[++i];
    }
    out.emplace_back(key, value);
  }
  return out;
}

}  // namespace zephyr

#include "model/config.h"

#include "core/error.h"

namespace zephyr {

namespace {

int64_t get_int(const json& j, const std::string& key, const std::string& where, int64_t fallback = -1) {
  if (!j.contains(key) || j[key].is_null()) {
    if (fallback >= 0) return fallback;
    fail(where, "missing \"" + key + "\"");
  }
  if (!j[key].is_number_integer()) fail(where, "\"" + key + "\" must be an integer, got " + j[key].dump());
  return j[key].get<int64_t>();
}

std::string get_string(const json& j, const std::string& key, const std::string& where, const std::string& fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_string()) fail(where, "\"" + key + "\" must be a string, got " + j[key].dump());
  return j[key].get<std::string>();
}

double get_number(const json& j, const std::string& key, const std::string& where, double fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) fail(where, "\"" + key + "\" must be a number, got " + j[key].dump());
  return j[key].get<double>();
}

}  // namespace

int64_t ModelConfig::num_parameters() const {
  const int64_t per_layer = hidden_size * (q_dim() + 2 * kv_dim()) + q_dim() * hidden_size +
                            3 * hidden_size * intermediate_size + 2 * hidden_size;
  return num_hidden_layers * per_layer + hidden_size + vocab_size * hidden_size * (tie_word_embeddings ? 1 : 2);
}

void ModelConfig::validate(const std::string& where) const {
  auto positive = [&](const char* name, int64_t v) {
    if (v <= 0) fail(where, std::string("\"") + name + "\" must be positive, got " + std::to_string(v));
  };
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("head_dim", head_dim);
  positive("vocab_size", vocab_size);
  positive("max_position_embeddings", max_position_embeddings);
  if (num_attention_heads % num_key_value_heads != 0)
    fail(where, "num_attention_heads (" + std::to_string(num_attention_heads) +
                    ") must be a multiple of num_key_value_heads (" + std::to_string(num_key_value_heads) + ")");
  if (head_dim % 2 != 0) fail(where, "head_dim must be even for rotary embeddings, got " + std::to_string(head_dim));
  if (sliding_window < 0) fail(where, "\"sliding_window\" must be positive or null");
  if (!(rms_norm_eps > 0)) fail(where, "\"rms_norm_eps\" must be positive");
  if (!(rope_theta > 0)) fail(where, "\"rope_theta\" must be positive");
}

namespace {
ModelConfig read_object(const json& j, const std::string& where) {
  ModelConfig c;
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch = j["architectures"][0].get<std::string>();
  const std::string model_type = get_string(j, "model_type", where, "");
  if (arch.empty()) arch = model_type == "llama" ? "LlamaForCausalLM" : model_type == "mistral" ? "MistralForCausalLM" : "";
  if (arch != "MistralForCausalLM" && arch != "LlamaForCausalLM")
    fail(where, "unsupported architecture '" + (arch.empty() ? model_type : arch) +
                    "'; expected MistralForCausalLM or LlamaForCausalLM");
  c.architecture = arch;
  const std::string act = get_string(j, "hidden_act", where, "silu");
  if (act != "silu") fail(where, "unsupported hidden_act '" + act + "'; expected silu");
  for (const char* key : {"attention_bias", "mlp_bias"})
    if (j.contains(key) && j[key].is_boolean() && j[key].get<bool>())
      fail(where, std::string("\"") + key + "\": true is not supported (Mistral and Llama have no biases)");
  c.hidden_size = get_int(j, "hidden_size", where);
  c.intermediate_size = get_int(j, "intermediate_size", where);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", where);
  c.num_attention_heads = get_int(j, "num_attention_heads", where);
  c.num_key_value_heads = get_int(j, "num_key_value_heads", where, c.num_attention_heads);
  c.vocab_size = get_int(j, "vocab_size", where);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", where, 32768);
  c.head_dim = c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  c.head_dim = get_int(j, "head_dim", where, c.head_dim);
  c.rms_norm_eps = get_number(j, "rms_norm_eps", where, 1e-6);
  // transformers 4.x writes rope_theta at the top; 5.x nests it in rope_parameters.
  c.rope_theta = get_number(j, "rope_theta", where, 10000.0);
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    const json& rp = j[key];
    if (!rp.is_object()) fail(where, std::string("\"") + key + "\" must be an object");
    const std::string type = get_string(rp, "rope_type", where, get_string(rp, "type", where, "default"));
    if (type != "default")
      fail(where, std::string("\"") + key + "\": rope_type '" + type + "' is not supported (only default RoPE)");
    c.rope_theta = get_number(rp, "rope_theta", where, c.rope_theta);
  }
  if (arch == "MistralForCausalLM" && j.contains("sliding_window") && !j["sliding_window"].is_null())
    c.sliding_window = get_int(j, "sliding_window", where);
  if (arch == "LlamaForCausalLM" || model_type == "llama") c.sliding_window = 0;
  if (j.contains("tie_word_embeddings") && !j["tie_word_embeddings"].is_null()) {
    if (!j["tie_word_embeddings"].is_boolean()) fail(where, "\"tie_word_embeddings\" must be true or false, got " + j["tie_word_embeddings"].dump());
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_token_id = j["bos_token_id"];
  if (j.contains("eos_token_id")) {
    const json& e = j["eos_token_id"];
    if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<int64_t>());
    else if (e.is_array())
      for (auto& v : e)
        if (v.is_number_integer()) c.eos_token_ids.push_back(v.get<int64_t>());
  }
  for (const char* key : {"torch_dtype", "dtype"})
    if (j.contains(key) && j[key].is_string()) c.torch_dtype = j[key].get<std::string>();
  c.validate(where);
  return c;
}
}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "expected a JSON object");
  try {
    return read_object(j, where);
  } catch (const json::exception& e) {  // a field of a type the reads below did not check first
    fail(where, json_error_text(e));
  }
}

ModelConfig ModelConfig::load(const std::filesystem::path& config_json) {
  return from_json(read_json_file(config_json), config_json.string());
}

json ModelConfig::to_json() const {
  const bool mistral = architecture == "MistralForCausalLM";
  json j = {
      {"architectures", {architecture}},
      {"model_type", mistral ? "mistral" : "llama"},
      {"hidden_act", "silu"},
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"num_key_value_heads", num_key_value_heads},
      {"head_dim", head_dim},
      {"vocab_size", vocab_size},
      {"max_position_embeddings", max_position_embeddings},
      {"rms_norm_eps", rms_norm_eps},
      {"rope_theta", rope_theta},
      {"tie_word_embeddings", tie_word_embeddings},
      {"initializer_range", 0.02},
      {"attention_dropout", 0.0},
      {"use_cache", true},
      {"torch_dtype", torch_dtype},
  };
  if (mistral) j["sliding_window"] = sliding_window > 0 ? json(sliding_window) : json(nullptr);
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_ids.size() == 1) j["eos_token_id"] = eos_token_ids[0];
  else if (!eos_token_ids.empty()) j["eos_token_id"] = eos_token_ids;
  return j;
}

json ModelConfig::generation_json() const {
  json gen = {{"_from_model_config", true}};
  if (bos_token_id >= 0) gen["bos_token_id"] = bos_token_id;
  if (eos_token_ids.size() == 1) gen["eos_token_id"] = eos_token_ids[0];
  else if (!eos_token_ids.empty()) gen["eos_token_id"] = eos_token_ids;
  return gen;
}

}  // namespace zephyr

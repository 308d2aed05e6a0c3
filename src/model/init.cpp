#include "model/init.h"

#include <cstring>

#include "core/error.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace zephyr {

std::vector<std::pair<std::string, std::vector<int64_t>>> model_tensor_shapes(const ModelConfig& c) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> t;
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  t.push_back({"model.embed_tokens.weight", {c.vocab_size, H}});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back({p + "self_attn.q_proj.weight", {c.q_dim(), H}});
    t.push_back({p + "self_attn.k_proj.weight", {c.kv_dim(), H}});
    t.push_back({p + "self_attn.v_proj.weight", {c.kv_dim(), H}});
    t.push_back({p + "self_attn.o_proj.weight", {H, c.q_dim()}});
    t.push_back({p + "mlp.gate_proj.weight", {I, H}});
    t.push_back({p + "mlp.up_proj.weight", {I, H}});
    t.push_back({p + "mlp.down_proj.weight", {H, I}});
    t.push_back({p + "input_layernorm.weight", {H}});
    t.push_back({p + "post_attention_layernorm.weight", {H}});
  }
  t.push_back({"model.norm.weight", {H}});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {c.vocab_size, H}});
  return t;
}

namespace {

constexpr size_t kBlock = 1 << 16;  // elements per independently seeded block

void fill_tensor(const std::string& name, size_t numel, DType dtype, uint64_t seed, size_t index, void* out) {
  const bool norm = name.find("norm.weight") != std::string::npos;
  parallel_for((numel + kBlock - 1) / kBlock, 1, [&](size_t b0, size_t b1) {
    for (size_t b = b0; b < b1; ++b) {
      Rng rng(seed ^ (0x9e3779b97f4a7c15ull * (index + 1)) ^ (b * 0xd1b54a32d192ed03ull));
      const size_t end = std::min(numel, (b + 1) * kBlock);
      for (size_t i = b * kBlock; i < end; ++i) {
        const float v = norm ? 1.0f : float(0.02 * rng.normal());
        if (dtype == DType::F32) static_cast<float*>(out)[i] = v;
        else if (dtype == DType::BF16) static_cast<uint16_t*>(out)[i] = f32_to_bf16(v);
        else static_cast<uint16_t*>(out)[i] = f32_to_f16(v);
      }
    }
  });
}

void copy_tokenizer(const fs::path& from, const fs::path& out) {
  const fs::path dir = fs::is_directory(from) ? from : from.parent_path();
  const fs::path tokenizer_json = fs::is_directory(from) ? from / "tokenizer.json" : from;
  if (!fs::exists(tokenizer_json)) fail(from.string(), "no tokenizer.json there");
  fs::copy_file(tokenizer_json, out / "tokenizer.json", fs::copy_options::overwrite_existing);
  for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"})
    if (fs::exists(dir / f)) fs::copy_file(dir / f, out / f, fs::copy_options::overwrite_existing);
}

}  // namespace

void fill_from_tokenizer(ModelConfig& c, const fs::path& tokenizer) {
  const Tokenizer tok = Tokenizer::load(tokenizer);
  if (c.vocab_size == 0) c.vocab_size = tok.vocab_size();
  if (c.vocab_size < tok.vocab_size())
    fail_field("vocab", std::to_string(c.vocab_size) + " is smaller than the tokenizer's " + std::to_string(tok.vocab_size()) + " tokens");
  if (tok.bos_id() >= 0) c.bos_token_id = tok.bos_id();
  if (tok.eos_id() >= 0) c.eos_token_ids = {tok.eos_id()};
}

void init_model(const fs::path& out, const InitOptions& o) {
  o.config.validate("init");
  if (o.shards < 1) fail("--shards", "must be at least 1");
  if (fs::exists(out / "config.json")) fail(out.string(), "already holds a model (config.json exists); choose a new directory");
  fs::create_directories(out);
  if (!o.tokenizer.empty()) copy_tokenizer(o.tokenizer, out);

  const auto shapes = model_tensor_shapes(o.config);
  std::vector<TensorToWrite> specs;
  for (auto& [name, shape] : shapes) specs.push_back({name, o.dtype, shape, nullptr});
  auto numel = [](const TensorToWrite& t) {
    size_t n = 1;
    for (auto d : t.shape) n *= size_t(d);
    return n;
  };
  // Shards split the tensor list evenly by bytes.
  size_t total = 0;
  for (auto& s : specs) total += numel(s) * dtype_size(s.dtype);
  const int n = std::min<int>(o.shards, int(specs.size()));
  std::vector<std::vector<size_t>> groups(static_cast<size_t>(n));
  size_t acc = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    size_t g = std::min<size_t>(size_t(n) - 1, acc * size_t(n) / std::max<size_t>(total, 1));
    groups[g].push_back(i);
    acc += numel(specs[i]) * dtype_size(specs[i].dtype);
  }
  json weight_map = json::object();
  for (int g = 0; g < n; ++g) {
    char fname[64];
    std::snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", g + 1, n);
    const std::string file = n == 1 ? "model.safetensors" : fname;
    std::vector<TensorToWrite> part;
    for (size_t i : groups[size_t(g)]) {
      part.push_back(specs[i]);
      weight_map[specs[i].name] = file;
    }
    write_safetensors(out / file, part,
                      [&](size_t j, void* buf) {
                        const size_t i = groups[size_t(g)][j];
                        fill_tensor(specs[i].name, numel(specs[i]), o.dtype, o.seed, i, buf);
                      },
                      {{"format", "pt"}});
  }
  if (n > 1) {
    json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_file_atomic(out / "model.safetensors.index.json", index.dump(2) + "\n");
  }
  ModelConfig c = o.config;
  c.torch_dtype = o.dtype == DType::F32 ? "float32" : o.dtype == DType::BF16 ? "bfloat16" : "float16";
  json gen = {{"_from_model_config", true}};
  if (c.bos_token_id >= 0) gen["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) gen["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) gen["eos_token_id"] = c.eos_token_ids;
  write_file_atomic(out / "generation_config.json", gen.dump(2) + "\n");
  // config.json last: its presence marks a complete model directory.
  write_file_atomic(out / "config.json", c.to_json().dump(2) + "\n");
}

}  // namespace zephyr

// export-hf: a GGUF back to the Hugging Face model directory it was converted from, so that SFT
// and DPO (which train HF directories) can start from a GGUF and transformers can load the result.
#include <cstring>

#include "core/error.h"
#include "core/parallel.h"
#include "io/safetensors.h"
#include "kernels/quant/formats.h"
#include "model/gguf_model.h"
#include "model/init.h"

namespace zephyr {

namespace fs = std::filesystem;

void export_hf(const fs::path& gguf, const fs::path& out, DType dtype) {
  if (dtype != DType::F32 && dtype != DType::BF16) fail("--dtype", "must be f32 or bf16");
  if (fs::exists(out / "config.json")) fail(out.string(), "already holds a model (config.json exists); choose a new directory");
  const GgufFile f(gguf);
  ModelConfig c = config_from_gguf(f);
  c.torch_dtype = dtype == DType::F32 ? "float32" : "bfloat16";
  const TokenizerFiles tok = tokenizer_files_from_gguf(f);

  std::vector<TensorToWrite> specs;
  std::vector<const GgufTensor*> sources;
  for (const auto& [hf, shape] : model_tensor_shapes(c)) {
    const GgufTensor* t = f.tensor(gguf_tensor_name(hf));
    if (!t) fail(f.name(), "missing tensor '" + gguf_tensor_name(hf) + "' (for " + hf + ")");
    if (t->shape != shape) fail(f.name(), "tensor '" + t->name + "' has a shape other than the metadata implies");
    specs.push_back({hf, shape.size() == 1 ? DType::F32 : dtype, shape, nullptr});
    sources.push_back(t);
  }
  fs::create_directories(out);
  write_safetensors(out / "model.safetensors", specs, [&](size_t i, void* buf) {
    const GgufTensor& t = *sources[i];
    const int64_t cols = t.shape.back(), rows = int64_t(t.nbytes / row_bytes(t.dtype, cols));
    const bool qk = specs[i].name.find("q_proj") != std::string::npos || specs[i].name.find("k_proj") != std::string::npos;
    const DType to = specs[i].dtype;
    parallel_for(size_t(rows), 16, [&](size_t r0, size_t r1) {
      std::vector<float> vals(static_cast<size_t>(cols));
      for (size_t r = r0; r < r1; ++r) {
        dequantize_row(t.dtype, t.data + r * row_bytes(t.dtype, cols), vals.data(), cols);
        // GGUF row r of a q/k projection holds the HF row hf_row_of_gguf_row(r).
        const size_t at = size_t(qk ? hf_row_of_gguf_row(int64_t(r), c.head_dim) : int64_t(r)) * size_t(cols);
        if (to == DType::F32) {
          std::memcpy(static_cast<float*>(buf) + at, vals.data(), size_t(cols) * 4);
        } else {
          for (int64_t k = 0; k < cols; ++k) static_cast<uint16_t*>(buf)[at + size_t(k)] = f32_to_bf16(vals[size_t(k)]);
        }
      }
    });
  }, {{"format", "pt"}});
  write_file_atomic(out / "tokenizer.json", tok.tokenizer.dump(2) + "\n");
  json config = tok.config;
  // The tokenizer as written (tokenizer.json), not a class that rebuilds its pre-tokenizer.
  config["tokenizer_class"] = "PreTrainedTokenizerFast";
  config["clean_up_tokenization_spaces"] = false;
  config["model_max_length"] = c.max_position_embeddings;
  write_file_atomic(out / "tokenizer_config.json", config.dump(2) + "\n");
  json special = json::object();
  for (const char* k : {"bos_token", "eos_token", "unk_token"})
    if (config.contains(k)) special[k] = config[k];
  write_file_atomic(out / "special_tokens_map.json", special.dump(2) + "\n");
  write_file_atomic(out / "generation_config.json", c.generation_json().dump(2) + "\n");
  // config.json last: its presence marks a complete model directory.
  write_file_atomic(out / "config.json", c.to_json().dump(2) + "\n");
}

}  // namespace zephyr

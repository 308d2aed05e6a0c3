// A llama-architecture GGUF as the HF model it came from: hyperparameters from `llama.*`
// metadata, tensors under their HF names, the tokenizer from `tokenizer.ggml.*` — and the way
// back (`export-gguf`, `quantize`). Facts carried over from the format: converters permute the
// rows of q_proj and k_proj so that each head's rotary pairs are adjacent (llama.cpp rotates
// (2i, 2i+1), transformers rotates (i, i + head_dim/2)); we undo that on load and redo it on
// export, so a GGUF and its HF original give the same logits.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "model/config.h"

namespace zephyr {

class Tokenizer;

// True if the path is a file starting with the GGUF magic or named *.gguf.
bool is_gguf_file(const std::filesystem::path& path);

ModelConfig config_from_gguf(const GgufFile& f);

// The GGUF tensor name for an HF tensor name ("" when it has none).
std::string gguf_tensor_name(const std::string& hf_name);

// GGUF row r of a permuted q/k projection holds HF row gguf_row_source(r): heads of head_dim
// rows, each with its two halves interleaved.
int64_t hf_row_of_gguf_row(int64_t r, int64_t head_dim);

// The tokenizer stored in the GGUF: tokenizer.json + tokenizer_config.json documents for
// Tokenizer::from_json (`llama` = sentencepiece-style BPE with byte fallback, `gpt2` = byte-level
// BPE with the split regex named by tokenizer.ggml.pre).
Tokenizer tokenizer_from_gguf(const GgufFile& f);
// The same as the files of an HF model directory: tokenizer.json (every field the `tokenizers`
// library reads) and tokenizer_config.json (bos/eos/unk, add_bos_token, chat_template).
struct TokenizerFiles {
  json tokenizer, config;
};
TokenizerFiles tokenizer_files_from_gguf(const GgufFile& f);

// A GGUF as an HF model directory that transformers loads: config.json, generation_config.json,
// model.safetensors (weights dequantized to `dtype`, F32 or BF16, q/k rows back in HF order),
// tokenizer.json and tokenizer_config.json from the GGUF's metadata. `out` must not hold a model.
void export_hf(const std::filesystem::path& gguf, const std::filesystem::path& out, DType dtype);

// Writes an HF model directory (or re-writes a GGUF) as GGUF with every 2-D weight in `type`
// (norms stay F32; matrices whose rows are not whole blocks stay F16). Tokenizer, chat template
// and special ids come from the model's tokenizer files when present.
struct ExportOptions {
  DType type = DType::F16;
  // Output projection type for the K-quant mixes (Q6_K for q4_k_m, as llama.cpp does).
  std::optional<DType> output_type;
};
void export_gguf(const std::filesystem::path& model, const std::filesystem::path& out, const ExportOptions& options);

}  // namespace zephyr

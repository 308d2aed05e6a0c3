// libFuzzer target: the files training and model loading read from outside. The first byte picks
// the reader, the rest is its input:
//   0 an SFT row ({"messages"} or tokenized)      1 a DPO pair
//   2 a training-config YAML                       3 a model's config.json
//   4 a model directory: INDEX \0 SAFETENSORS — model.safetensors, or with a non-empty INDEX a
//     model.safetensors.index.json and the shard it names; every tensor found is read end to end
//   5 generation_config.json (sampling defaults, validated)
// Rows are tokenized with the tiny byte-level ChatML tokenizer of recipes/smol/tiny_tokenizer. Each must succeed or raise
// Error — never crash, hang or hit undefined behaviour. (A row's field of the wrong type may also
// raise the JSON library's exception: every JSONL reader turns that into an Error naming the file
// and line, see for_each_jsonl.)
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "generate/generation_defaults.h"
#include "io/json_file.h"
#include "io/model_dir.h"
#include "model/config.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/dpo_data.h"
#include "train/sft_data.h"
#include "train/train_config.h"

namespace fs = std::filesystem;

namespace {
struct Fixture {
  zephyr::Tokenizer tok = zephyr::Tokenizer::load(fs::path(ZEPHYR_SOURCE_DIR) / "recipes/smol/tiny_tokenizer");
  zephyr::ChatTemplate tmpl{tok.chat_template()};
  fs::path dir = fs::temp_directory_path() / ("zephyr-fuzz-" + std::to_string(getpid()));
  Fixture() { fs::create_directories(dir); }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

void write(const fs::path& path, std::string_view bytes) { std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size())); }

void model_dir(const Fixture& f, std::string_view input) {
  for (const char* n : {"model.safetensors", "model.safetensors.index.json", "model-00001-of-00001.safetensors"}) fs::remove(f.dir / n);
  write(f.dir / "config.json", R"({"architectures": ["MistralForCausalLM"], "hidden_size": 8, "intermediate_size": 16,
    "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 16})");
  const size_t nul = input.find('\0');
  const std::string_view index = nul == std::string_view::npos ? std::string_view() : input.substr(0, nul);
  const std::string_view weights = nul == std::string_view::npos ? input : input.substr(nul + 1);
  if (index.empty()) {
    write(f.dir / "model.safetensors", weights);
  } else {
    write(f.dir / "model.safetensors.index.json", index);
    write(f.dir / "model-00001-of-00001.safetensors", weights);
  }
  const zephyr::ModelDir d(f.dir);
  uint64_t sum = 0;
  for (const std::string& name : d.tensor_names())
    if (const zephyr::TensorInfo* t = d.find(name); t && t->nbytes > 0) sum += t->data[0] + t->data[t->nbytes - 1];
  (void)sum;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 6) {
      case 0: (void)zephyr::sft_row(zephyr::parse_ordered_json(text, "row"), &f.tok, &f.tmpl, 64, "row"); break;
      case 1: (void)zephyr::preference_pair(zephyr::parse_ordered_json(text, "row"), &f.tok, &f.tmpl, 64, 32, "row"); break;
      case 2:
        write(f.dir / "train.yaml", text);
        (void)zephyr::TrainConfig::load(f.dir / "train.yaml", {});
        break;
      case 3: (void)zephyr::ModelConfig::from_json(zephyr::parse_json(text, "config.json"), "config.json"); break;
      case 4: model_dir(f, text); break;
      case 5: zephyr::sampling_defaults(zephyr::parse_json(text, "generation_config.json")).validate(); break;
    }
  } catch (const zephyr::Error&) {
  } catch (const zephyr::json::exception&) {
    if (data[0] % 6 > 1) throw;
  }
  return 0;
}

// libFuzzer target: what training reads from outside. The first byte picks the reader, the rest is
// its input: 0 an SFT row ({"messages"} or tokenized), 1 a DPO pair, 2 a training-config YAML,
// 3 a model's config.json. Rows are tokenized with the tiny byte-level ChatML tokenizer of
// recipes/smol/tiny_tokenizer (read from the working directory: `make fuzz` runs at the root).
// Each must succeed or raise Error — never crash, hang or hit undefined behaviour. (A row's field
// of the wrong type may also raise the JSON library's exception: every JSONL reader turns that
// into an Error naming the file and line, see for_each_jsonl.)
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "core/error.h"
#include "io/json_file.h"
#include "model/config.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/dpo_data.h"
#include "train/sft_data.h"
#include "train/train_config.h"

namespace {
struct Fixture {
  zephyr::Tokenizer tok = zephyr::Tokenizer::load("recipes/smol/tiny_tokenizer");
  zephyr::ChatTemplate tmpl{tok.chat_template()};
  std::string yaml_path = "/tmp/zephyr-fuzz-" + std::to_string(getpid()) + ".yaml";
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 4) {
      case 0: (void)zephyr::sft_row(zephyr::parse_ordered_json(text, "row"), &f.tok, &f.tmpl, 64, "row"); break;
      case 1: (void)zephyr::preference_pair(zephyr::parse_ordered_json(text, "row"), &f.tok, &f.tmpl, 64, 32, "row"); break;
      case 2: {
        FILE* out = std::fopen(f.yaml_path.c_str(), "wb");
        if (!out) return 0;
        std::fwrite(text.data(), 1, text.size(), out);
        std::fclose(out);
        (void)zephyr::TrainConfig::load(f.yaml_path, {});
        break;
      }
      case 3: (void)zephyr::ModelConfig::from_json(zephyr::parse_json(text, "config.json"), "config.json"); break;
    }
  } catch (const zephyr::Error&) {
  } catch (const zephyr::json::exception&) {
    if (data[0] % 4 > 1) throw;
  }
  return 0;
}

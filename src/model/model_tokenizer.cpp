#include "model/model_tokenizer.h"

#include <filesystem>

#include "core/error.h"
#include "io/model_dir.h"
#include "model/gguf_model.h"

namespace zephyr {

Tokenizer load_tokenizer(const std::string& path) {
  if (is_gguf_file(path)) return tokenizer_from_gguf(GgufFile(path));
  return Tokenizer::load(path);
}

Tokenizer model_tokenizer(const Model& model) {
  if (model.gguf) return tokenizer_from_gguf(*model.gguf);
  if (!std::filesystem::exists(model.dir / "tokenizer.json"))
    fail(model.dir.string(), "has no tokenizer.json (create the model with `zephyr init --tokenizer PATH`, or copy one in)");
  return Tokenizer::load(model.dir);
}

OptionalTokenizer load_optional_tokenizer(const std::string& model_path) {
  OptionalTokenizer t;
  const bool gguf = is_gguf_file(model_path);
  const std::filesystem::path dir = gguf ? std::filesystem::path() : ModelDir::resolve(model_path);
  if (!gguf && !std::filesystem::exists(dir / "tokenizer.json")) return t;
  if (gguf) {
    const GgufFile g(model_path);
    const std::string kind = g.get_string("tokenizer.ggml.model", "");
    if (kind.empty() || kind == "no_vocab" || kind == "none") return t;
    t.tok = std::make_unique<Tokenizer>(tokenizer_from_gguf(g));
  } else {
    t.tok = std::make_unique<Tokenizer>(Tokenizer::load(dir));
  }
  if (!t.tok->chat_template().empty()) t.tmpl = std::make_unique<ChatTemplate>(t.tok->chat_template());
  return t;
}

}  // namespace zephyr

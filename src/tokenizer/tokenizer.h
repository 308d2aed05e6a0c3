// A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json): the BPE families in use
// today, sentencepiece-style with byte fallback (Mistral, Llama-2) and byte-level (GPT-2,
// Llama-3, Qwen, SmolLM).
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"

namespace zephyr {

class Tokenizer {
 public:
  // `path` is a model directory or a tokenizer.json; a tokenizer_config.json beside it is read
  // for bos/eos, add_bos_token/add_eos_token and the chat template (a chat_template.jinja beside
  // it, as transformers >= 4.43 saves the template, when the config has none).
  static Tokenizer load(const std::filesystem::path& path);
  // Builds from parsed documents; `config` may be null. `where` names the source in errors.
  static Tokenizer from_json(const json& tokenizer, const json& config, const std::string& where);

  // As transformers' tokenizer(text): with add_special, the post-processor adds BOS/EOS.
  // Throws Error on invalid UTF-8, naming the byte offset.
  std::vector<int> encode(std::string_view text, bool add_special = true) const;
  // As transformers' decode(ids, skip_special_tokens=skip_special). Throws on unknown ids.
  std::string decode(const std::vector<int>& ids, bool skip_special = true) const;

  int vocab_size() const { return bpe_.size(); }
  int token_id(const std::string& token) const;  // -1 when absent
  const std::string& token(int id) const;
  bool is_special(int id) const;
  // The bytes token `id` adds in the middle of a text (Decoder::token_bytes).
  std::string token_bytes(int id) const { return decoder_.token_bytes(token(id)); }

  const std::string& bos_token() const { return bos_token_; }  // "" when the model has none
  const std::string& eos_token() const { return eos_token_; }
  int bos_id() const { return token_id(bos_token_); }
  int eos_id() const { return token_id(eos_token_); }
  const std::string& chat_template() const { return chat_template_; }  // "" when none
  // The ids encode(text, true) puts before the text (BOS when add_bos_token); see conversation.h.
  const std::vector<int>& leading_specials() const { return prefix_; }

 private:
  Bpe bpe_;
  AddedTokens added_;
  std::vector<char> special_;  // by id
  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  Decoder decoder_;
  // Post-processing for a single sequence: ids before and after it.
  std::vector<int> prefix_, suffix_;
  std::string bos_token_, eos_token_, chat_template_;
};

// Streams text as ids arrive, never emitting half a UTF-8 character: it re-decodes a short
// window of ids and emits only the new, complete text (so decoders that look at neighbouring
// tokens, like Strip or Metaspace, agree with a whole decode).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = true) : tok_(tok), skip_special_(skip_special) {}
  std::string push(int id);  // the text that became final with this id (maybe "")
  std::string finish();      // whatever is left, incomplete characters replaced
 private:
  const Tokenizer& tok_;
  bool skip_special_;
  // The ids from the last emitted token on; ids_[0, read_) were already emitted.
  std::pair<std::string, std::string> window_texts() const;  // decoded [0, read_) and all of ids_
  std::vector<int> ids_;
  size_t read_ = 0;
};

}  // namespace zephyr

#include "model/gguf_model.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <tuple>

#include "core/error.h"
#include "core/parallel.h"
#include "core/utf8.h"
#include "io/model_dir.h"
#include "kernels/quant/formats.h"
#include "tokenizer/tokenizer.h"

namespace zephyr {

namespace {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum TokenType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// The pre-tokenizer split regexes behind the tokenizer.ggml.pre names llama.cpp writes (the
// patterns are those of the models' own tokenizer.json files).
const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

json split_then_bytes(const char* regex) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
}

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

json pre_tokenizer_for(const std::string& pre, const std::string& where) {
  if (pre == "llama-bpe" || pre == "llama3" || pre == "smaug-bpe") return split_then_bytes(kLlama3Regex);
  if (pre == "qwen2" || pre == "deepseek-r1-qwen") return split_then_bytes(kQwen2Regex);
  if (pre == "smollm" || pre == "starcoder" || pre == "refact")
    return {{"type", "Sequence"},
            {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}};
  if (pre == "gpt2" || pre == "default" || pre.empty()) return byte_level(true);
  fail(where, "tokenizer.ggml.pre \"" + pre + "\" is not supported (supported: default, gpt2, llama-bpe, qwen2, smollm)");
}

// The name llama.cpp gives a byte-level pre-tokenizer, recognised from its split regex.
std::string pre_name_of(const json& pre) {
  const std::string s = pre.dump();
  auto has = [&](const char* regex) { return s.find(json(regex).dump()) != std::string::npos; };
  if (has(kLlama3Regex)) return "llama-bpe";
  if (has(kQwen2Regex)) return "qwen2";
  if (s.find("\"Digits\"") != std::string::npos) return "smollm";
  if (s.find("\"ByteLevel\"") != std::string::npos) return "gpt2";
  return "";
}

json bpe_model(const json& vocab, const json& merges, const json& unk, bool byte_fallback, bool ignore_merges) {
  return {{"type", "BPE"},          {"dropout", nullptr},         {"unk_token", unk},
          {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", byte_fallback},
          {"byte_fallback", byte_fallback},       {"ignore_merges", ignore_merges}, {"vocab", vocab},
          {"merges", merges}};
}

std::string token_at(const json& tokens, int64_t id) {
  return id >= 0 && size_t(id) < tokens.size() ? tokens[size_t(id)].get<std::string>() : std::string();
}

}  // namespace

bool is_gguf_file(const std::filesystem::path& path) {
  if (!std::filesystem::is_regular_file(path)) return false;
  if (path.extension() == ".gguf") return true;  // GgufFile then says what is wrong with it
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

ModelConfig config_from_gguf(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture", "");
  if (arch != "llama")
    fail(f.name(), "general.architecture is \"" + arch + "\"; zephyr runs llama-architecture models (Mistral, Zephyr, Llama, SmolLM)");
  auto key = [&](const std::string& k) { return arch + "." + k; };
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = f.get_int(key("embedding_length"));
  c.intermediate_size = f.get_int(key("feed_forward_length"));
  c.num_hidden_layers = f.get_int(key("block_count"));
  c.num_attention_heads = f.get_int(key("attention.head_count"));
  c.num_key_value_heads = f.get_int(key("attention.head_count_kv"), c.num_attention_heads);
  c.head_dim = c.num_attention_heads > 0 ? f.get_int(key("attention.key_length"), c.hidden_size / c.num_attention_heads) : 0;
  c.max_position_embeddings = f.get_int(key("context_length"), c.max_position_embeddings);
  c.rms_norm_eps = f.get_float(key("attention.layer_norm_rms_epsilon"), 1e-5);
  c.rope_theta = f.get_float(key("rope.freq_base"), 10000.0);
  c.sliding_window = f.get_int(key("attention.sliding_window"), 0);
  const int64_t rot = f.get_int(key("rope.dimension_count"), c.head_dim);
  if (rot != c.head_dim)
    fail(f.name(), key("rope.dimension_count") + " = " + std::to_string(rot) + " rotates part of each head; zephyr supports full rotary only");
  const std::string scaling = f.get_string(key("rope.scaling.type"), "none");
  if (scaling != "none") fail(f.name(), "rope scaling \"" + scaling + "\" is not supported");
  const GgufTensor* embd = f.tensor("token_embd.weight");
  if (!embd) fail(f.name(), "missing tensor 'token_embd.weight'");
  c.vocab_size = embd->shape[0];
  c.tie_word_embeddings = f.tensor("output.weight") == nullptr;
  c.bos_token_id = f.get_int("tokenizer.ggml.bos_token_id", -1);
  if (f.find("tokenizer.ggml.eos_token_id")) c.eos_token_ids = {f.get_int("tokenizer.ggml.eos_token_id")};
  c.validate(f.name());
  return c;
}

std::string gguf_tensor_name(const std::string& hf) {
  static const std::map<std::string, std::string> top = {{"model.embed_tokens.weight", "token_embd.weight"},
                                                         {"model.norm.weight", "output_norm.weight"},
                                                         {"lm_head.weight", "output.weight"}};
  static const std::map<std::string, std::string> layer = {
      {"input_layernorm.weight", "attn_norm.weight"},   {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},     {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},       {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"}};
  if (auto it = top.find(hf); it != top.end()) return it->second;
  const std::string p = "model.layers.";
  if (hf.rfind(p, 0) != 0) return "";
  const size_t dot = hf.find('.', p.size());
  if (dot == std::string::npos) return "";
  auto it = layer.find(hf.substr(dot + 1));
  return it == layer.end() ? "" : "blk." + hf.substr(p.size(), dot - p.size()) + "." + it->second;
}

int64_t hf_row_of_gguf_row(int64_t r, int64_t head_dim) {
  const int64_t h = r / head_dim, i = (r % head_dim) / 2, j = r % 2;
  return h * head_dim + j * (head_dim / 2) + i;
}

TokenizerFiles tokenizer_files_from_gguf(const GgufFile& f) {
  const std::string model = f.get_string("tokenizer.ggml.model", "");
  if (model.empty() || model == "no_vocab" || model == "none") fail(f.name(), "has no tokenizer (tokenizer.ggml.model is absent or \"no_vocab\")");
  const json& tokens = f.get_array("tokenizer.ggml.tokens");
  for (const auto& t : tokens)
    if (!t.is_string()) fail(f.name(), "tokenizer.ggml.tokens must hold strings");
  std::vector<int> types(tokens.size(), kNormal);
  if (f.find("tokenizer.ggml.token_type")) {
    const json& tt = f.get_array("tokenizer.ggml.token_type");
    if (tt.size() != tokens.size()) fail(f.name(), "tokenizer.ggml.token_type has a different length than the tokens");
    for (size_t i = 0; i < tt.size(); ++i) {
      const std::optional<int> t = json_int(tt[i]);
      if (!t) fail(f.name(), "tokenizer.ggml.token_type must hold small integers");
      types[i] = *t;
    }
  }
  json vocab = json::object(), added = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& s = tokens[i].get_ref<const std::string&>();
    if (!vocab.contains(s)) vocab[s] = int64_t(i);
    if (types[i] == kControl || types[i] == kUserDefined || types[i] == kUnknown)
      added.push_back({{"id", int64_t(i)}, {"content", s}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", types[i] == kUserDefined}, {"special", types[i] != kUserDefined}});
  }
  // Every field the `tokenizers` library expects, so the documents load there unchanged (export-hf).
  json doc = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
              {"normalizer", nullptr}, {"pre_tokenizer", nullptr}, {"post_processor", nullptr}};
  const int64_t unk = f.get_int("tokenizer.ggml.unknown_token_id", -1);
  json config = json::object();
  if (model == "llama") {
    // Sentencepiece BPE: a pair merges when the joined piece is in the vocabulary, highest
    // score first. As ranked merges: every split of every normal token into two vocabulary
    // pieces, ordered by the joined token's score.
    std::vector<float> scores(tokens.size(), 0.0f);
    if (f.find("tokenizer.ggml.scores")) {
      const json& sc = f.get_array("tokenizer.ggml.scores");
      if (sc.size() != tokens.size()) fail(f.name(), "tokenizer.ggml.scores has a different length than the tokens");
      for (size_t i = 0; i < sc.size(); ++i) scores[i] = sc[i].get<float>();
    }
    std::vector<std::tuple<float, int64_t, int64_t, int64_t>> cands;  // (-score, id, left id, right id)
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (types[i] != kNormal) continue;
      const std::string& s = tokens[i].get_ref<const std::string&>();
      for (size_t k = 1; k < s.size(); ++k) {
        if ((static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) continue;  // inside a character
        auto l = vocab.find(s.substr(0, k));
        if (l == vocab.end()) continue;
        auto r = vocab.find(s.substr(k));
        if (r == vocab.end()) continue;
        cands.emplace_back(-scores[i], int64_t(i), l->get<int64_t>(), r->get<int64_t>());
      }
    }
    std::sort(cands.begin(), cands.end());
    json merges = json::array();
    for (auto& [s, id, l, r] : cands) merges.push_back({token_at(tokens, l), token_at(tokens, r)});
    doc["model"] = bpe_model(vocab, merges, unk >= 0 ? json(token_at(tokens, unk)) : json(nullptr), true, false);
    const bool prefix = f.get_bool("tokenizer.ggml.add_space_prefix", true);
    json replace = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xe2\x96\x81"}};
    doc["normalizer"] = prefix ? json{{"type", "Sequence"},
                                      {"normalizers", {{{"type", "Prepend"}, {"prepend", "\xe2\x96\x81"}}, replace}}}
                               : replace;
    json decoders = {{{"type", "Replace"}, {"pattern", {{"String", "\xe2\x96\x81"}}}, {"content", " "}},
                     {{"type", "ByteFallback"}},
                     {{"type", "Fuse"}}};
    if (prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    doc["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
    config["add_bos_token"] = f.get_bool("tokenizer.ggml.add_bos_token", true);
  } else if (model == "gpt2") {
    const json& merges = f.get_array("tokenizer.ggml.merges");
    const std::string pre = f.get_string("tokenizer.ggml.pre", "default");
    doc["model"] = bpe_model(vocab, merges, nullptr, false, pre == "llama-bpe" || pre == "llama3");
    doc["pre_tokenizer"] = pre_tokenizer_for(pre, f.name());
    doc["decoder"] = byte_level(true);
    config["add_bos_token"] = f.get_bool("tokenizer.ggml.add_bos_token", false);
  } else {
    fail(f.name(), "tokenizer.ggml.model \"" + model + "\" is not supported (supported: llama, gpt2)");
  }
  config["add_eos_token"] = f.get_bool("tokenizer.ggml.add_eos_token", false);
  const int64_t bos = f.get_int("tokenizer.ggml.bos_token_id", -1), eos = f.get_int("tokenizer.ggml.eos_token_id", -1);
  if (bos >= 0) config["bos_token"] = token_at(tokens, bos);
  if (eos >= 0) config["eos_token"] = token_at(tokens, eos);
  if (f.find("tokenizer.chat_template")) config["chat_template"] = f.get_string("tokenizer.chat_template", "");
  // tokenizer(text) adds BOS through the post-processor in the `tokenizers` library.
  if (config["add_bos_token"].get<bool>() && bos >= 0)
    doc["post_processor"] = {{"type", "TemplateProcessing"},
                             {"single", {{{"SpecialToken", {{"id", token_at(tokens, bos)}, {"type_id", 0}}}},
                                         {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                             {"pair", {{{"SpecialToken", {{"id", token_at(tokens, bos)}, {"type_id", 0}}}},
                                       {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                       {{"SpecialToken", {{"id", token_at(tokens, bos)}, {"type_id", 1}}}},
                                       {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
                             {"special_tokens", {{token_at(tokens, bos), {{"id", token_at(tokens, bos)}, {"ids", {bos}}, {"tokens", {token_at(tokens, bos)}}}}}}};
  if (unk >= 0) config["unk_token"] = token_at(tokens, unk);
  return {doc, config};
}

Tokenizer tokenizer_from_gguf(const GgufFile& f) {
  const TokenizerFiles t = tokenizer_files_from_gguf(f);
  return Tokenizer::from_json(t.tokenizer, t.config, f.name() + " (tokenizer)");
}

namespace {

// The tokenizer files of an HF directory as tokenizer.ggml.* metadata.
void write_tokenizer_metadata(const std::filesystem::path& dir, GgufWriter& w) {
  const auto tok_file = dir / "tokenizer.json";
  if (!std::filesystem::exists(tok_file)) {  // llama.cpp's marker for a model without a vocabulary
    w.set_string("tokenizer.ggml.model", "no_vocab");
    return;
  }
  const json doc = read_json_file(tok_file);
  json config = json::object();
  if (std::filesystem::exists(dir / "tokenizer_config.json")) config = read_json_file(dir / "tokenizer_config.json");
  const Tokenizer tok = Tokenizer::load(dir);
  const json& model = doc.at("model");
  if (model.value("type", "") != "BPE") fail(tok_file.string(), "only BPE tokenizers can be exported to GGUF");
  const int n = tok.vocab_size();
  json tokens = json::array(), types = json::array();
  std::map<std::string, int> merge_rank;  // token → rank of the merge that first makes it
  const json& merges = model.at("merges");
  for (size_t r = 0; r < merges.size(); ++r) {
    std::string joined;
    if (merges[r].is_string()) {
      std::string s = merges[r].get<std::string>();
      const size_t sp = s.find(' ');
      joined = s.substr(0, sp) + s.substr(sp + 1);
    } else {
      joined = merges[r][0].get<std::string>() + merges[r][1].get<std::string>();
    }
    merge_rank.emplace(joined, int(r));
  }
  const bool byte_fallback = model.value("byte_fallback", false);
  json scores = json::array();
  for (int i = 0; i < n; ++i) {
    const std::string& s = tok.token(i);
    tokens.push_back(s);
    int type = kNormal;
    if (tok.is_special(i)) type = kControl;
    else if (byte_fallback && s.size() == 6 && s.rfind("<0x", 0) == 0 && s.back() == '>') type = kByte;
    types.push_back(type);
    auto it = merge_rank.find(s);
    scores.push_back(type != kNormal ? 0.0f : it != merge_rank.end() ? -float(it->second) - 1.0f : 0.0f);
  }
  w.set("tokenizer.ggml.tokens", GgufType::Array, tokens, GgufType::String);
  w.set("tokenizer.ggml.token_type", GgufType::Array, types, GgufType::I32);
  if (byte_fallback) {
    w.set_string("tokenizer.ggml.model", "llama");
    w.set("tokenizer.ggml.scores", GgufType::Array, scores, GgufType::F32);
    w.set_bool("tokenizer.ggml.add_space_prefix", doc.value("normalizer", json()).dump().find("Prepend") != std::string::npos);
  } else {
    const std::string pre = pre_name_of(doc.value("pre_tokenizer", json()));
    if (pre.empty()) fail(tok_file.string(), "its pre_tokenizer matches no GGUF pre-tokenizer name (gpt2, llama-bpe, qwen2, smollm)");
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", pre);
    json m = json::array();
    for (const auto& e : merges) m.push_back(e.is_string() ? e.get<std::string>() : e[0].get<std::string>() + " " + e[1].get<std::string>());
    w.set("tokenizer.ggml.merges", GgufType::Array, m, GgufType::String);
  }
  if (tok.bos_id() >= 0) w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(tok.bos_id()));
  if (tok.eos_id() >= 0) w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(tok.eos_id()));
  if (model.contains("unk_token") && model["unk_token"].is_string() && tok.token_id(model["unk_token"]) >= 0)
    w.set_u32("tokenizer.ggml.unknown_token_id", uint32_t(tok.token_id(model["unk_token"])));
  w.set_bool("tokenizer.ggml.add_bos_token", config.value("add_bos_token", byte_fallback));
  w.set_bool("tokenizer.ggml.add_eos_token", config.value("add_eos_token", false));
  if (!tok.chat_template().empty()) w.set_string("tokenizer.chat_template", tok.chat_template());
}

// Converts rows of `src` (type `from`) into `dst` (type `to`), optionally reordering rows.
void convert_rows(DType from, const uint8_t* src, DType to, uint8_t* dst, int64_t rows, int64_t cols,
                  int64_t permute_head_dim) {
  const size_t in_row = row_bytes(from, cols), out_row = row_bytes(to, cols);
  parallel_for(size_t(rows), 16, [&](size_t r0, size_t r1) {
    std::vector<float> tmp(static_cast<size_t>(cols));
    for (size_t r = r0; r < r1; ++r) {
      const int64_t s = permute_head_dim ? hf_row_of_gguf_row(int64_t(r), permute_head_dim) : int64_t(r);
      if (from == to) {
        std::memcpy(dst + r * out_row, src + size_t(s) * in_row, out_row);
        continue;
      }
      dequantize_row(from, src + size_t(s) * in_row, tmp.data(), cols);
      quantize_row(to, tmp.data(), dst + r * out_row, cols);
    }
  });
}

DType type_for(const std::string& gguf_name, int64_t cols, size_t ndim, const ExportOptions& o) {
  if (ndim < 2) return DType::F32;
  DType t = o.type;
  if (o.output_type && (gguf_name == "output.weight" || gguf_name.find("attn_v.") != std::string::npos ||
                        gguf_name.find("ffn_down.") != std::string::npos))
    t = *o.output_type;
  return cols % block_elements(t) == 0 ? t : DType::F16;
}

// general.file_type values (llama_ftype) for the types we write.
uint32_t file_type_id(const ExportOptions& o) {
  if (o.output_type) return 15;  // MOSTLY_Q4_K_M
  switch (o.type) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q4_1: return 3;
    case DType::Q8_0: return 7;
    case DType::Q4_K: return 15;
    case DType::Q6_K: return 18;
    case DType::BF16: return 32;
    default: return 0;  // interleaved layouts live in memory only
  }
}

}  // namespace

void export_gguf(const std::filesystem::path& path, const std::filesystem::path& out, const ExportOptions& o) {
  GgufWriter w;
  if (is_gguf_file(path)) {  // re-quantize: metadata and row order stay as they are
    GgufFile src(path);
    for (const auto& [k, v] : src.metadata())
      if (k != "general.alignment" && k != "general.file_type") w.set(k, v.type, v.value, v.elem);
    w.set_u32("general.file_type", file_type_id(o));
    for (const GgufTensor& t : src.tensors()) {
      const DType to = type_for(t.name, t.shape.back(), t.shape.size(), o);
      const int64_t cols = t.shape.back(), rows = int64_t(t.nbytes / row_bytes(t.dtype, cols));
      const GgufTensor* tp = &t;
      w.add_tensor(t.name, to, t.shape, [tp, to, rows, cols](uint8_t* dst) {
        convert_rows(tp->dtype, tp->data, to, dst, rows, cols, 0);
      });
    }
    w.write(out);
    return;
  }
  const std::filesystem::path dir = ModelDir::resolve(path);
  const ModelConfig c = ModelConfig::load(dir / "config.json");
  const ModelDir files(dir);
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", dir.filename().string());
  w.set_u32("general.file_type", file_type_id(o));
  w.set_u32("llama.context_length", uint32_t(c.max_position_embeddings));
  w.set_u32("llama.embedding_length", uint32_t(c.hidden_size));
  w.set_u32("llama.block_count", uint32_t(c.num_hidden_layers));
  w.set_u32("llama.feed_forward_length", uint32_t(c.intermediate_size));
  w.set_u32("llama.rope.dimension_count", uint32_t(c.head_dim));
  w.set_u32("llama.attention.head_count", uint32_t(c.num_attention_heads));
  w.set_u32("llama.attention.head_count_kv", uint32_t(c.num_key_value_heads));
  if (c.head_dim * c.num_attention_heads != c.hidden_size) {
    w.set_u32("llama.attention.key_length", uint32_t(c.head_dim));
    w.set_u32("llama.attention.value_length", uint32_t(c.head_dim));
  }
  w.set_f32("llama.attention.layer_norm_rms_epsilon", float(c.rms_norm_eps));
  w.set_f32("llama.rope.freq_base", float(c.rope_theta));
  w.set_u32("llama.vocab_size", uint32_t(c.vocab_size));
  try {  // Tokenizer::load has checked the files; a field of another type slipping past it is named here
    write_tokenizer_metadata(dir, w);
  } catch (const json::exception& e) {
    fail((dir / "tokenizer.json").string() + " or tokenizer_config.json", json_error_text(e));
  }
  auto files_ptr = std::make_shared<ModelDir>(dir);
  std::vector<std::string> names = {"model.embed_tokens.weight"};
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    for (const char* s : {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                          "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
      names.push_back("model.layers." + std::to_string(i) + "." + s + ".weight");
  names.push_back("model.norm.weight");
  if (!c.tie_word_embeddings || files.find("lm_head.weight")) names.push_back("lm_head.weight");
  for (const std::string& hf : names) {
    const TensorInfo* t = files_ptr->find(hf);
    if (!t) fail(files_ptr->file_of(hf), "missing tensor '" + hf + "'");
    const DType from = t->float_dtype(files_ptr->file_of(hf));
    const std::string g = gguf_tensor_name(hf);
    const int64_t cols = t->shape.back(), rows = t->numel() / cols;
    const DType to = type_for(g, cols, t->shape.size(), o);
    const bool q = hf.find("q_proj") != std::string::npos, k = hf.find("k_proj") != std::string::npos;
    const int64_t permute = q || k ? c.head_dim : 0;
    w.add_tensor(g, to, t->shape, [files_ptr, t, from, to, rows, cols, permute](uint8_t* dst) {
      convert_rows(from, t->data, to, dst, rows, cols, permute);
    });
  }
  w.write(out);
}

}  // namespace zephyr

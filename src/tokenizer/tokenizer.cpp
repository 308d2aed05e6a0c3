#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "core/utf8.h"

namespace zephyr {
namespace {

// bos_token / eos_token in tokenizer_config.json are strings or {"content": ...} objects.
std::string token_string(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const auto& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

// chat_template is a string, or a list of {"name", "template"} of which "default" is used.
std::string template_string(const json& config, const std::string& where) {
  if (!config.is_object() || !config.contains("chat_template")) return "";
  const auto& v = config["chat_template"];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    for (const auto& t : v)
      if (t.is_object() && t.value("name", "") == "default" && t.contains("template")) return t["template"].get<std::string>();
    if (!v.empty() && v[0].is_object() && v[0].contains("template")) return v[0]["template"].get<std::string>();
  }
  if (v.is_null()) return "";
  fail(where + ": chat_template", "expected a string or a list of {\"name\", \"template\"}");
}

}  // namespace

Tokenizer Tokenizer::load(const std::filesystem::path& path) {
  std::filesystem::path file = path, dir = path;
  if (std::filesystem::is_directory(path)) {
    file = path / "tokenizer.json";
  } else {
    dir = path.parent_path();
  }
  if (!std::filesystem::exists(file)) fail(file.string(), "no such file (expected a model directory or a tokenizer.json)");
  const json tok = read_json_file(file);
  json config;
  const auto config_file = (dir.empty() ? std::filesystem::path(".") : dir) / "tokenizer_config.json";
  if (std::filesystem::exists(config_file)) config = read_json_file(config_file);
  const auto jinja_file = config_file.parent_path() / "chat_template.jinja";
  if (template_string(config, config_file.string()).empty() && std::filesystem::exists(jinja_file)) {
    if (!config.is_object()) config = json::object();
    config["chat_template"] = read_file(jinja_file.string());
  }
  return from_json(tok, config, file.string());
}

Tokenizer Tokenizer::from_json(const json& doc, const json& config, const std::string& where) {
  Tokenizer t;
  if (!doc.is_object()) fail(where, "expected a JSON object");
  if (!doc.contains("model")) fail(where, "missing \"model\"");
  try {
    t.bpe_ = Bpe::from_json(doc["model"], "model");
    if (doc.contains("added_tokens")) {
      if (!doc["added_tokens"].is_array()) fail("added_tokens", "expected an array");
      for (const auto& a : doc["added_tokens"]) {
        AddedToken at;
        at.content = a.at("content").get<std::string>();
        const std::optional<int> id = json_int(a.at("id"));
        if (!id || *id < 0) fail("added_tokens", "\"id\" of \"" + at.content + "\" must be a non-negative 32-bit integer");
        at.id = *id;
        at.special = a.value("special", false);
        at.lstrip = a.value("lstrip", false);
        at.rstrip = a.value("rstrip", false);
        at.single_word = a.value("single_word", false);
        if (at.id < 0) fail("added_tokens", "negative id for \"" + at.content + "\"");
        t.bpe_.set_token(at.id, at.content);
        t.added_.add(at);
      }
    }
    t.special_.assign(static_cast<size_t>(t.bpe_.size()), 0);
    for (const auto& at : t.added_.tokens())
      if (at.special) t.special_[static_cast<size_t>(at.id)] = 1;
    t.normalizer_ = Normalizer::from_json(doc.value("normalizer", json()), "normalizer");
    t.pre_tokenizer_ = PreTokenizer::from_json(doc.value("pre_tokenizer", json()), "pre_tokenizer");
    t.decoder_ = Decoder::from_json(doc.value("decoder", json()), "decoder");

    t.bos_token_ = token_string(config, "bos_token");
    t.eos_token_ = token_string(config, "eos_token");
    t.chat_template_ = template_string(config, where);

    // Post-processing. transformers rebuilds it from add_bos_token / add_eos_token when the
    // config sets them; otherwise tokenizer.json's post_processor applies.
    const bool config_sets = config.is_object() && (config.contains("add_bos_token") || config.contains("add_eos_token"));
    if (config_sets) {
      const auto flag = [&](const char* key) {
        if (!config.contains(key)) return false;
        if (!config[key].is_boolean())
          fail("tokenizer_config.json", std::string("\"") + key + "\" must be true or false, got " + config[key].dump().substr(0, 40));
        return config[key].get<bool>();
      };
      if (flag("add_bos_token") && t.bos_id() >= 0) t.prefix_.push_back(t.bos_id());
      if (flag("add_eos_token") && t.eos_id() >= 0) t.suffix_.push_back(t.eos_id());
    } else {
      const json post = doc.value("post_processor", json());
      std::vector<json> procs;
      if (post.is_object() && post.value("type", "") == "Sequence") {
        for (const auto& p : post.at("processors")) procs.push_back(p);
      } else if (!post.is_null()) {
        procs.push_back(post);
      }
      for (const auto& p : procs) {
        const std::string type = p.value("type", "");
        if (type == "ByteLevel") continue;  // only adjusts offsets
        if (type != "TemplateProcessing") fail("post_processor", "type \"" + type + "\" is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
        bool after = false;
        for (const auto& item : p.at("single")) {
          if (item.contains("Sequence")) {
            after = true;
          } else if (item.contains("SpecialToken")) {
            const std::string name = item["SpecialToken"].at("id").get<std::string>();
            const auto& specials = p.at("special_tokens");
            if (!specials.contains(name)) fail("post_processor.special_tokens", "\"" + name + "\" is not defined");
            for (const auto& id : specials[name].at("ids")) {
              const std::optional<int> v = json_int(id);
              if (!v || *v < 0) fail("post_processor.special_tokens", "\"" + name + "\" holds an id that is not a token id");
              (after ? t.suffix_ : t.prefix_).push_back(*v);
            }
          }
        }
      }
    }
  } catch (const json::exception& e) {
    fail(where, "unexpected structure: " + json_error_text(e));
  } catch (const Error& e) {
    fail(where, e.what());
  }
  return t;
}

std::vector<int> Tokenizer::encode(std::string_view text, bool add_special) const {
  const size_t bad = utf8::find_invalid(text);
  if (bad != std::string_view::npos) fail("", "invalid UTF-8 at byte " + std::to_string(bad) + " of the input text");
  std::vector<int> ids;
  if (add_special) ids = prefix_;
  std::vector<std::string> words;
  bool first = true;
  for (const auto& seg : added_.split(text)) {
    if (seg.token_id >= 0) {
      ids.push_back(seg.token_id);
    } else {
      std::string piece(seg.text);
      normalizer_.apply(piece);
      words.clear();
      pre_tokenizer_.split(std::move(piece), first, words);
      for (const auto& w : words) bpe_.encode_word(w, ids);
    }
    first = false;
  }
  if (add_special) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int id : ids) {
    if (id < 0 || id >= bpe_.size()) fail("", "token id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(bpe_.size() - 1) + ")");
    if (skip_special && special_[static_cast<size_t>(id)]) continue;
    tokens.push_back(bpe_.token(id));
  }
  return decoder_.decode(std::move(tokens));
}

int Tokenizer::token_id(const std::string& token) const { return token.empty() ? -1 : bpe_.find(token); }

const std::string& Tokenizer::token(int id) const {
  if (id < 0 || id >= bpe_.size()) fail("", "token id " + std::to_string(id) + " is outside the vocabulary");
  return bpe_.token(id);
}

bool Tokenizer::is_special(int id) const { return id >= 0 && id < bpe_.size() && special_[static_cast<size_t>(id)]; }

std::pair<std::string, std::string> StreamDecoder::window_texts() const {
  const std::vector<int> emitted(ids_.begin(), ids_.begin() + static_cast<long>(read_));
  return {tok_.decode(emitted, skip_special_), tok_.decode(ids_, skip_special_)};
}

std::string StreamDecoder::push(int id) {
  ids_.push_back(id);
  const auto [prev_text, text] = window_texts();
  // Hold back while the newest bytes are an unfinished character (decoders mark those U+FFFD).
  if (text.size() <= prev_text.size() || text.compare(0, prev_text.size(), prev_text) != 0 ||
      text.ends_with(utf8::kReplacementChar) || utf8::incomplete_tail(text) > 0)
    return "";
  // The window slides: the last emitted ids stay as left context for the next decode.
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<long>(read_));
  read_ = ids_.size();
  return text.substr(prev_text.size());
}

std::string StreamDecoder::finish() {
  const auto [prev_text, text] = window_texts();
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<long>(read_));
  read_ = ids_.size();
  return text.size() > prev_text.size() ? text.substr(prev_text.size()) : "";
}

}  // namespace zephyr

#include "serve/openai.h"

#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <random>

namespace zephyr::serve {

json ApiError::body() const {
  return {{"error", {{"message", what()}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)},
                     {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

void bad_request(const std::string& param, const std::string& message) {
  throw ApiError(400, "invalid_request_error", param.empty() ? message : param + ": " + message, param);
}

namespace {

double number(const json& body, const char* key, double lo, double hi, double fallback) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  const json& v = body[key];
  if (!v.is_number()) bad_request(key, "expected a number, got " + std::string(v.type_name()));
  const double d = v.get<double>();
  if (!(d >= lo && d <= hi)) bad_request(key, "must be in [" + json(lo).dump() + ", " + json(hi).dump() + "], got " + v.dump());
  return d;
}

int64_t integer(const json& body, const char* key, int64_t lo, int64_t hi, int64_t fallback) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  const json& v = body[key];
  if (!v.is_number_integer()) bad_request(key, "expected an integer, got " + v.dump());
  const int64_t i = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : v.get<int64_t>();
  if (i < lo || i > hi) bad_request(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v.dump());
  return i;
}

bool boolean(const json& body, const char* key) {
  if (!body.contains(key) || body[key].is_null()) return false;
  if (!body[key].is_boolean()) bad_request(key, "expected true or false, got " + body[key].dump());
  return body[key].get<bool>();
}

// content: a string, or a list of parts of which the text ones count (joined).
std::string message_content(const json& m, const std::string& where) {
  if (!m.contains("content") || m["content"].is_null()) return "";
  const json& c = m["content"];
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) bad_request("messages", where + ".content: expected a string or a list of parts");
  std::string text;
  for (const json& part : c) {
    if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") || !part["text"].is_string())
      bad_request("messages", where + ".content: only {\"type\": \"text\", \"text\": ...} parts are supported");
    text += part["text"].get<std::string>();
  }
  return text;
}

ordered_json parse_messages(const json& body) {
  if (!body.contains("messages")) bad_request("messages", "is required");
  const json& ms = body["messages"];
  if (!ms.is_array()) bad_request("messages", "expected a list of {\"role\", \"content\"}");
  if (ms.empty()) bad_request("messages", "must hold at least one message");
  ordered_json out = ordered_json::array();
  for (size_t i = 0; i < ms.size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    const json& m = ms[i];
    if (!m.is_object()) bad_request("messages", where + ": expected an object {\"role\", \"content\"}");
    if (!m.contains("role") || !m["role"].is_string()) bad_request("messages", where + ": \"role\" must be a string");
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";  // the newer name for the system role
    out.push_back({{"role", role}, {"content", message_content(m, where)}});
  }
  return out;
}

std::vector<std::string> stops(const json& body) {
  std::vector<std::string> out;
  if (!body.contains("stop") || body["stop"].is_null()) return out;
  const json& s = body["stop"];
  if (s.is_string()) return {s.get<std::string>()};
  if (!s.is_array()) bad_request("stop", "expected a string or a list of strings");
  if (s.size() > 4) bad_request("stop", "at most 4 stop sequences");
  for (const json& x : s) {
    if (!x.is_string()) bad_request("stop", "expected a string or a list of strings");
    if (!x.get<std::string>().empty()) out.push_back(x.get<std::string>());
  }
  return out;
}

// Compiled grammars by schema text: a judge sends the same schema with every request, and its
// masks (cached in the grammar's StructuredOutput) then serve them all.
std::shared_ptr<const StructuredOutput> compiled(const ordered_json& schema, bool any_object) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const StructuredOutput>> cache;
  const std::string key = any_object ? "" : schema.dump();
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  std::shared_ptr<const StructuredOutput> so;
  try {
    so = StructuredOutput::from(any_object ? JsonGrammar::any_object() : JsonGrammar::from_schema(schema));
  } catch (const Error& e) {
    bad_request("response_format", e.reason());
  }
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= 64) cache.clear();
  cache.emplace(key, so);
  return so;
}

// response_format: text (none), json_object, or json_schema {name, schema, strict}. The schema is
// read from the body again in order-keeping form: properties are written in the order declared.
std::shared_ptr<const StructuredOutput> response_format(const json& body, const std::string& text) {
  if (!body.contains("response_format") || body["response_format"].is_null()) return nullptr;
  const json& rf = body["response_format"];
  if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
    bad_request("response_format", "expected {\"type\": \"text\" | \"json_object\" | \"json_schema\", ...}");
  const std::string type = rf["type"].get<std::string>();
  if (type == "text") return nullptr;
  if (type == "json_object") return compiled(ordered_json(), true);
  if (type != "json_schema") bad_request("response_format", "type must be text, json_object or json_schema, got \"" + type + "\"");
  if (!rf.contains("json_schema") || !rf["json_schema"].is_object())
    bad_request("response_format", "json_schema: expected an object {\"name\", \"schema\", \"strict\"}");
  const json& js = rf["json_schema"];
  if (js.contains("name") && !js["name"].is_string()) bad_request("response_format", "json_schema.name: expected a string");
  if (!js.contains("schema") || !js["schema"].is_object()) bad_request("response_format", "json_schema.schema: expected a JSON schema object");
  const ordered_json ordered = ordered_json::parse(text);
  return compiled(ordered["response_format"]["json_schema"]["schema"], false);
}

}  // namespace

namespace {
CompletionRequest read_request(const std::string& text, Endpoint e, const SamplingParams& defaults) {
  json body;
  if (const size_t at = json_depth_overflow(text); at != std::string::npos)
    bad_request("", "the body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels (byte " + std::to_string(at) + ")");
  try {
    body = json::parse(text);
  } catch (const json::parse_error& err) {
    bad_request("", "the body is not valid JSON (byte " + std::to_string(err.byte) + ")");
  } catch (const json::exception& err) {  // a number beyond double's range (found by fuzzing)
    bad_request("", "the body is not usable JSON: " + json_error_text(err));
  }
  if (!body.is_object()) bad_request("", "the body must be a JSON object");
  CompletionRequest r;
  r.endpoint = e;
  if (body.contains("model") && !body["model"].is_null()) {
    if (!body["model"].is_string()) bad_request("model", "expected a string");
    r.model = body["model"].get<std::string>();
  }
  if (e == Endpoint::Chat) {
    r.messages = parse_messages(body);
  } else {
    if (!body.contains("prompt")) bad_request("prompt", "is required");
    const json& p = body["prompt"];
    if (p.is_string()) {
      r.prompts = {p.get<std::string>()};
    } else if (p.is_array() && !p.empty() && p[0].is_number_integer()) {
      for (const json& id : p) {
        const std::optional<int> v = json_int(id);
        if (!v) bad_request("prompt", "a token list must hold 32-bit integers only");
        r.prompt_ids.push_back(*v);
      }
    } else if (p.is_array() && !p.empty()) {
      for (const json& s : p) {
        if (!s.is_string()) bad_request("prompt", "expected a string, a list of strings or a list of token ids");
        r.prompts.push_back(s.get<std::string>());
      }
    } else {
      bad_request("prompt", "expected a string, a list of strings or a list of token ids");
    }
    if (boolean(body, "echo")) bad_request("echo", "is not supported");
  }
  if (e == Endpoint::Chat) {
    const bool want = boolean(body, "logprobs");
    const int64_t top = integer(body, "top_logprobs", 0, 20, -1);
    if (top >= 0 && !want) bad_request("top_logprobs", "needs \"logprobs\": true");
    r.options.top_logprobs = want ? int(std::max<int64_t>(top, 0)) : -1;
  } else {
    r.options.top_logprobs = int(integer(body, "logprobs", 0, 20, -1));
  }
  r.options.structured = response_format(body, text);
  if (body.contains("tools") && !body["tools"].is_null() && !body["tools"].empty()) bad_request("tools", "tool calls are not supported");
  SamplingParams& s = r.options.sampling;
  s = defaults;
  s.temperature = number(body, "temperature", 0, 2, defaults.temperature);
  s.top_p = number(body, "top_p", 0, 1, defaults.top_p);
  if (s.top_p == 0) bad_request("top_p", "must be greater than 0");
  s.top_k = integer(body, "top_k", 0, 1 << 30, defaults.top_k);
  s.min_p = number(body, "min_p", 0, 1, defaults.min_p);
  s.repetition_penalty = number(body, "repetition_penalty", 1e-6, 100, defaults.repetition_penalty);
  number(body, "presence_penalty", -2, 2, 0);  // accepted for compatibility, not applied
  number(body, "frequency_penalty", -2, 2, 0);
  const bool seeded = body.contains("seed") && !body["seed"].is_null();
  s.seed = seeded ? uint64_t(integer(body, "seed", INT64_MIN, INT64_MAX, 0)) : std::random_device{}();
  const int64_t max_tokens = integer(body, "max_tokens", 1, int64_t(1) << 40, -1);
  r.options.max_new_tokens = integer(body, "max_completion_tokens", 1, int64_t(1) << 40, max_tokens);
  r.options.stop_strings = stops(body);
  r.n = int(integer(body, "n", 1, 16, 1));
  r.stream = boolean(body, "stream");
  r.ignore_eos = boolean(body, "ignore_eos");
  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    if (!body["stream_options"].is_object()) bad_request("stream_options", "expected an object");
    if (!r.stream) bad_request("stream_options", "is only allowed with stream: true");
    r.include_usage = boolean(body["stream_options"], "include_usage");
  }
  return r;
}
}  // namespace

CompletionRequest parse_request(const std::string& text, Endpoint e, const SamplingParams& defaults) {
  try {
    return read_request(text, e, defaults);
  } catch (const json::exception& err) {  // a field of a type the checks above missed: still the client's error
    bad_request("", "unusable request: " + json_error_text(err));
  }
}

json Usage::to_json() const {
  return {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens}, {"total_tokens", prompt_tokens + completion_tokens}};
}

std::string api_finish_reason(const std::string& reason) {
  return reason == "length" || reason == "content_filter" ? reason : "stop";
}

namespace {

json head(Endpoint e, const ResponseMeta& m, bool chunk) {
  return {{"id", m.id},
          {"object", e == Endpoint::Chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
          {"created", m.created},
          {"model", m.model},
          {"system_fingerprint", std::string("zephyr-") + ZEPHYR_VERSION}};
}

}  // namespace

json logprobs_json(Endpoint e, const Tokenizer& tok, const std::vector<TokenLogprob>& lps, int64_t offset) {
  const auto bytes_of = [](const std::string& s) {
    json b = json::array();
    for (char c : s) b.push_back(int(uint8_t(c)));
    return b;
  };
  if (e == Endpoint::Chat) {
    json content = json::array();
    for (const TokenLogprob& lp : lps) {
      const std::string t = tok.token_bytes(lp.id);
      json top = json::array();
      for (const auto& [id, v] : lp.top) {
        const std::string s = tok.token_bytes(id);
        top.push_back({{"token", s}, {"logprob", v}, {"bytes", bytes_of(s)}});
      }
      content.push_back({{"token", t}, {"logprob", lp.logprob}, {"bytes", bytes_of(t)}, {"top_logprobs", top}});
    }
    return {{"content", content}, {"refusal", nullptr}};
  }
  json tokens = json::array(), values = json::array(), tops = json::array(), offsets = json::array();
  for (const TokenLogprob& lp : lps) {
    const std::string t = tok.token_bytes(lp.id);
    tokens.push_back(t);
    values.push_back(lp.logprob);
    json top = json::object();
    for (const auto& [id, v] : lp.top) top[tok.token_bytes(id)] = v;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += int64_t(t.size());
  }
  return {{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json completion_response(Endpoint e, const ResponseMeta& meta, const std::vector<GenerationResult>& choices, const Usage& usage,
                         const Tokenizer& tok, bool logprobs, const std::vector<std::string>* refusals) {
  json r = head(e, meta, false);
  json list = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    json c = {{"index", i}};
    if (e == Endpoint::Chat) {
      c["message"] = {{"role", "assistant"}, {"content", choices[i].text}};
      if (refusals && !(*refusals)[i].empty()) c["message"]["refusal"] = (*refusals)[i];
    }
    else c["text"] = choices[i].text;
    c["logprobs"] = logprobs ? logprobs_json(e, tok, choices[i].logprobs) : json(nullptr);
    c["finish_reason"] = api_finish_reason(choices[i].finish_reason);
    list.push_back(c);
  }
  r["choices"] = list;
  r["usage"] = usage.to_json();
  return r;
}

json stream_chunk(Endpoint e, const ResponseMeta& meta, int index, const std::string* text, const std::string* finish, bool role,
                  bool with_usage_field, const json* logprobs) {
  json r = head(e, meta, true);
  json c = {{"index", index}};
  if (e == Endpoint::Chat) {
    json delta = json::object();
    if (role) delta["role"] = "assistant";
    if (text) delta["content"] = *text;
    c["delta"] = delta;
  } else {
    c["text"] = text ? *text : "";
  }
  c["logprobs"] = logprobs ? *logprobs : json(nullptr);
  c["finish_reason"] = finish ? json(api_finish_reason(*finish)) : json(nullptr);
  r["choices"] = json::array({c});
  if (with_usage_field) r["usage"] = nullptr;
  return r;
}

json usage_chunk(Endpoint e, const ResponseMeta& meta, const Usage& usage) {
  json r = head(e, meta, true);
  r["choices"] = json::array();
  r["usage"] = usage.to_json();
  return r;
}

std::string sse(const json& chunk) { return "data: " + chunk.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n"; }

}  // namespace zephyr::serve

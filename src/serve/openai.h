// The OpenAI API's request and response shapes (https://platform.openai.com/docs/api-reference):
// /v1/chat/completions and /v1/completions bodies parsed and checked into what the engine runs,
// and the JSON objects and SSE chunks sent back. Validation errors are ApiErrors (HTTP status,
// OpenAI error type, the offending field as `param`).
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "generate/generator.h"
#include "io/json_file.h"
#include "tokenizer/tokenizer.h"

namespace zephyr::serve {

struct ApiError : std::runtime_error {
  ApiError(int status, std::string type, const std::string& message, std::string param = "", std::string code = "")
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)), code(std::move(code)) {}
  int status;
  std::string type, param, code;
  // {"error": {"message", "type", "param", "code"}}
  json body() const;
};

// A 400 invalid_request_error naming the field.
[[noreturn]] void bad_request(const std::string& param, const std::string& message);

enum class Endpoint { Chat, Completions };

// A parsed request. For chat, `messages` (checked: a non-empty list of {role, content}, text
// parts joined); for completions, `prompts` (strings) or `prompt_ids`.
struct CompletionRequest {
  Endpoint endpoint = Endpoint::Chat;
  std::optional<std::string> model;
  ordered_json messages;
  std::vector<std::string> prompts;
  std::vector<int> prompt_ids;
  GenerationOptions options;    // sampling (seed: given or random), max_new_tokens (-1: up to the context), stops
  int n = 1;
  bool stream = false, include_usage = false;
  bool ignore_eos = false;  // an extension (vLLM, llama.cpp): generate max_tokens whatever the model says
};

// Parses and checks a body against the endpoint's schema. `defaults` are the server's sampling
// defaults (the model's generation_config.json, then zephyr's).
CompletionRequest parse_request(const std::string& body, Endpoint endpoint, const SamplingParams& defaults);

// Response objects. `id` like "chatcmpl-…"; `created` in Unix seconds.
struct ResponseMeta {
  std::string id, model;
  int64_t created = 0;
};
struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
  json to_json() const;
};
// finish_reason as the API says it: "stop", "length", "content_filter" (a cancelled choice reads
// "stop").
std::string api_finish_reason(const std::string& engine_reason);

// OpenAI's logprobs object for these tokens: chat {"content": [{token, logprob, bytes,
// top_logprobs}]}, completions {tokens, token_logprobs, top_logprobs, text_offset} with offsets
// counted from `offset` (the bytes of the completion before them).
json logprobs_json(Endpoint e, const Tokenizer& tok, const std::vector<TokenLogprob>& lps, int64_t offset = 0);

// logprobs: the request asked for them (each choice's result.logprobs are then sent).
// refusals (chat, when given): per choice a refusal message, or "".
json completion_response(Endpoint e, const ResponseMeta& meta, const std::vector<GenerationResult>& choices, const Usage& usage,
                         const Tokenizer& tok, bool logprobs, const std::vector<std::string>* refusals = nullptr);
// One stream chunk: text for choice `index` (role announced first for chat), or its finish;
// `logprobs` (null: the field is null) for the tokens of this chunk.
json stream_chunk(Endpoint e, const ResponseMeta& meta, int index, const std::string* text, const std::string* finish, bool role,
                  bool with_usage_field, const json* logprobs = nullptr);
json usage_chunk(Endpoint e, const ResponseMeta& meta, const Usage& usage);
// "data: JSON\n\n"
std::string sse(const json& chunk);

}  // namespace zephyr::serve

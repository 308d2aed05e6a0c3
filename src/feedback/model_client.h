// One way to name a model for every stage that talks to one (feedback, evaluation), and clients
// for the three kinds:
//   PATH                       a local model (GGUF file or HF directory), run in-process on the
//                              batched engine: concurrent calls decode together;
//   http(s)://HOST:PORT/v1[#NAME]  an OpenAI-compatible server (`zephyr serve`, vLLM, llama.cpp,
//                              a hosted API); without #NAME the first model of /v1/models;
//   exec:PATH                  a program: one JSON object on stdin, one on stdout, exit 0.
// API keys come from an environment variable whose name is given (never the key itself), and
// never appear in errors, logs or outputs.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "generate/sampler.h"
#include "io/json_file.h"

namespace zephyr {

struct ModelSpec {
  enum class Kind { Local, Endpoint, Exec } kind = Kind::Local;
  std::string target;       // the path, the base URL (…/v1) or the program
  std::string model_name;   // Endpoint: #NAME ("" = ask /v1/models)
  std::string api_key_env;  // Endpoint: the environment variable holding the key ("" = none)
  std::string label() const;  // what outputs record as "model"
};
// Throws Error (field "model") for a malformed spec.
ModelSpec parse_model_spec(const std::string& text, const std::string& api_key_env = "");

struct ChatCall {
  ordered_json messages;
  SamplingParams sampling;
  int64_t max_tokens = 512;
  ordered_json json_schema;  // non-null: the answer must be a JSON value of this schema
};

struct ChatReply {
  std::string text, finish_reason;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  int retries = 0;    // attempts repeated after a transient failure (endpoints)
  std::string error;  // non-empty: no answer (after the retries)
};

struct ClientOptions {
  int parallel = 8;        // local: sequences decoded together
  int max_retries = 4;     // endpoints: after a 429, a 5xx, a timeout or a broken connection
  int retry_base_ms = 500;  // first backoff; doubles each retry (a Retry-After header wins)
  int timeout_s = 600;
};

// A model to ask. complete() is thread-safe and never throws for a failed call (see error).
class ModelClient {
 public:
  virtual ~ModelClient() = default;
  virtual ChatReply complete(const ChatCall& call) = 0;
  // exec: only: the program's answer to one JSON object ({"error"} in the reply on failure).
  virtual ordered_json run(const ordered_json& input, std::string& error);
  const ModelSpec& spec() const { return spec_; }

 protected:
  explicit ModelClient(ModelSpec s) : spec_(std::move(s)) {}
  ModelSpec spec_;
};

// Loads or connects. Throws Error naming the spec when a local model cannot be loaded.
std::unique_ptr<ModelClient> make_model_client(const ModelSpec& spec, const ClientOptions& options);

// Runs a program with `input` on its stdin; its stdout parsed as JSON. false (with `error`) on a
// non-zero exit, a timeout or output that is not JSON.
bool run_json_program(const std::string& path, const ordered_json& input, int timeout_s, ordered_json& output, std::string& error);

}  // namespace zephyr

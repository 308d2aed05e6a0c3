#include "feedback/model_client.h"

#include <httplib.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/subprocess.h"
#include "generate/engine.h"
#include "model/model_tokenizer.h"
#include "tokenizer/conversation.h"

namespace zephyr {

std::string ModelSpec::label() const {
  if (kind == Kind::Exec) return "exec:" + target;
  if (kind == Kind::Endpoint) return model_name.empty() ? target : target + "#" + model_name;
  return target;
}

ModelSpec parse_model_spec(const std::string& text, const std::string& api_key_env) {
  ModelSpec s;
  s.api_key_env = api_key_env;
  if (text.empty()) fail_field("model", "empty model spec (expected a path, http(s)://HOST:PORT/v1[#NAME] or exec:PATH)");
  if (text.rfind("exec:", 0) == 0) {
    s.kind = ModelSpec::Kind::Exec;
    s.target = text.substr(5);
    if (s.target.empty()) fail_field("model", "\"" + text + "\": exec: needs a program path");
    return s;
  }
  if (text.rfind("http://", 0) == 0 || text.rfind("https://", 0) == 0) {
    s.kind = ModelSpec::Kind::Endpoint;
    const size_t hash = text.find('#');
    s.target = text.substr(0, hash);
    if (hash != std::string::npos) s.model_name = text.substr(hash + 1);
    while (!s.target.empty() && s.target.back() == '/') s.target.pop_back();
    if (s.target.find('/', text.find("//") + 2) == std::string::npos) s.target += "/v1";  // http://host:port means its /v1
    return s;
  }
  s.target = text;
  return s;
}

ordered_json ModelClient::run(const ordered_json&, std::string& error) {
  error = spec_.label() + ": only exec: models take task objects";
  return nullptr;
}

bool run_json_program(const std::string& path, const ordered_json& input, int timeout_s, ordered_json& output, std::string& error) {
  PipedChild child;
  if (!spawn_piped(path, child, error)) return false;
  const pid_t pid = child.pid;
  const std::string data = input.dump(-1, ' ', false, ordered_json::error_handler_t::replace) + "\n";
  std::string got;
  size_t written = 0;
  int to = child.to;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool timed_out = false;
  for (;;) {  // write and read together: a program may answer before it has read everything
    pollfd p[2] = {{child.from, POLLIN, 0}, {to, POLLOUT, 0}};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    if (::poll(p, to >= 0 ? 2 : 1, int(left)) < 0 && errno != EINTR) break;
    if (to >= 0 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = ::write(to, data.data() + written, data.size() - written);
      if (n > 0) written += size_t(n);
      if (n < 0 || written == data.size()) ::close(to), to = -1;
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[65536];
      const ssize_t n = ::read(child.from, buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, size_t(n));
    }
  }
  if (to >= 0) ::close(to);
  ::close(child.from);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (timed_out) return error = path + ": no answer within " + std::to_string(timeout_s) + " s", false;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return error = path + ": exited with " + (WIFEXITED(status) ? "status " + std::to_string(WEXITSTATUS(status)) : "a signal"), false;
  std::optional<ordered_json> parsed = try_parse_ordered_json(got);
  if (!parsed) return error = path + ": its output is not one JSON object: " + got.substr(0, 200), false;
  output = std::move(*parsed);
  return true;
}

namespace {

// A local model on its own batched engine.
class LocalClient : public ModelClient {
 public:
  LocalClient(const ModelSpec& s, const ClientOptions& o)
      : ModelClient(s), model_(Model::load(s.target)), tok_(model_tokenizer(model_)), tmpl_(chat_template_of(tok_, s.target)),
        engine_(model_, tok_, engine_options(model_, o)) {}

  ChatReply complete(const ChatCall& call) override {
    ChatReply reply;
    auto r = std::make_shared<EngineRequest>();
    std::promise<GenerationResult> done;
    auto result = done.get_future();
    try {
      r->prompt = chat_ids(tmpl_, tok_, {{"messages", call.messages}}, true);
      r->options.sampling = call.sampling;
      r->options.max_new_tokens = std::min<int64_t>(call.max_tokens, engine_.slot_context() - int64_t(r->prompt.size()));
      r->options.eos_ids = model_.eos_token_ids();
      if (!call.json_schema.is_null()) r->options.structured = structured(call.json_schema);
      r->on_text = [](std::string_view) { return true; };
      r->on_done = [&done](const GenerationResult& g) { done.set_value(g); };
      if (r->options.max_new_tokens < 1) return reply.error = "the prompt fills the model's context", reply;
      while (!engine_.submit(r)) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // queue full: wait
    } catch (const Error& e) {
      return reply.error = e.what(), reply;
    }
    const GenerationResult g = result.get();
    reply.text = g.text;
    reply.finish_reason = g.finish_reason;
    reply.prompt_tokens = g.prompt_tokens;
    reply.completion_tokens = int64_t(g.tokens.size());
    return reply;
  }

 private:
  static EngineOptions engine_options(const Model& m, const ClientOptions& o) {
    EngineOptions e;
    e.slots = std::max(1, o.parallel);
    e.slot_context = std::min<int64_t>(m.config.max_position_embeddings, 4096);
    e.queue = 1024;
    return e;
  }
  std::shared_ptr<const StructuredOutput> structured(const ordered_json& schema) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& so = schemas_[schema.dump()];
    if (!so) so = StructuredOutput::from(JsonGrammar::from_schema(schema));
    return so;
  }
  Model model_;
  Tokenizer tok_;
  ChatTemplate tmpl_;
  Engine engine_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const StructuredOutput>> schemas_;
};

// An OpenAI-compatible endpoint, with retries and exponential backoff.
class EndpointClient : public ModelClient {
 public:
  EndpointClient(const ModelSpec& s, const ClientOptions& o) : ModelClient(s), o_(o) {
    const size_t host_end = s.target.find('/', s.target.find("//") + 2);
    origin_ = s.target.substr(0, host_end);
    base_ = s.target.substr(host_end);
    if (!s.api_key_env.empty()) {
      const char* k = std::getenv(s.api_key_env.c_str());
      if (!k || !*k) fail_field("model", s.label() + ": the environment variable " + s.api_key_env + " (its API key) is not set");
      key_ = k;
    }
  }

  ChatReply complete(const ChatCall& call) override {
    ChatReply reply;
    const std::string name = model_name(reply.error);
    if (!reply.error.empty()) return reply;
    ordered_json body = {{"model", name}, {"messages", call.messages}, {"max_tokens", call.max_tokens},
                         {"temperature", call.sampling.temperature}, {"top_p", call.sampling.top_p},
                         {"seed", int64_t(call.sampling.seed & 0x7fffffffffffffffULL)}};
    if (!call.json_schema.is_null() && !no_schema_)
      body["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "answer"}, {"schema", call.json_schema}, {"strict", true}}}};
    std::string text = body.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
    for (int attempt = 0;; ++attempt) {
      std::string why;
      int wait_ms = o_.retry_base_ms << std::min(attempt, 16);
      auto cli = client();
      auto res = cli->Post(base_ + "/chat/completions", text, "application/json");
      if (!res) {
        why = httplib::to_string(res.error());
      } else if (res->status == 200) {
        try {
          const json r = try_parse_json(res->body).value_or(json());
          const json& c = r.at("choices").at(0);
          reply.text = c.at("message").at("content").get<std::string>();
          reply.finish_reason = c.value("finish_reason", "");
          if (r.contains("usage") && r["usage"].is_object()) {
            reply.prompt_tokens = r["usage"].value("prompt_tokens", int64_t(0));
            reply.completion_tokens = r["usage"].value("completion_tokens", int64_t(0));
          }
          return reply;
        } catch (const json::exception&) {
          why = "an answer that is not a chat completion: " + res->body.substr(0, 120);
        }
      } else if (res->status == 429 || res->status >= 500) {
        why = "HTTP " + std::to_string(res->status);
        if (res->has_header("Retry-After")) wait_ms = std::min(60000, std::max(0, std::atoi(res->get_header_value("Retry-After").c_str())) * 1000);
      } else if (res->status == 400 && body.contains("response_format") && res->body.find("response_format") != std::string::npos) {
        // A server without structured outputs: ask in plain text (the caller parses it).
        no_schema_ = true;
        body.erase("response_format");
        text = body.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
        --attempt;
        continue;
      } else {
        return reply.error = spec_.label() + ": HTTP " + std::to_string(res->status) + ": " + res->body.substr(0, 300), reply;
      }
      if (attempt >= o_.max_retries) return reply.error = spec_.label() + ": " + why + " (after " + std::to_string(attempt) + " retries)", reply;
      reply.retries += 1;
      std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    }
  }

 private:
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>(origin_);
    c->set_connection_timeout(10, 0);
    c->set_read_timeout(o_.timeout_s, 0);
    c->set_write_timeout(60, 0);
    if (!key_.empty()) c->set_bearer_token_auth(key_);
    return c;
  }
  // #NAME, or the first model the server lists (asked once).
  std::string model_name(std::string& error) {
    if (!spec_.model_name.empty()) return spec_.model_name;
    std::lock_guard<std::mutex> lock(mu_);
    if (!listed_.empty()) return listed_;
    auto res = client()->Get(base_ + "/models");
    try {
      if (res && res->status == 200) return listed_ = try_parse_json(res->body).value_or(json()).at("data").at(0).at("id").get<std::string>();
    } catch (const json::exception&) {
    }
    error = spec_.label() + ": cannot list its models (" + (res ? "HTTP " + std::to_string(res->status) : httplib::to_string(res.error())) +
            "); name one with #NAME";
    return "";
  }
  ClientOptions o_;
  std::string origin_, base_, key_, listed_;
  std::mutex mu_;
  std::atomic<bool> no_schema_{false};  // it refused response_format once
};

// exec:PATH — a program per call.
class ExecClient : public ModelClient {
 public:
  ExecClient(const ModelSpec& s, const ClientOptions& o) : ModelClient(s), timeout_s_(o.timeout_s) {
    if (::access(s.target.c_str(), X_OK) != 0) fail_field("model", s.label() + ": not an executable file");
  }
  ordered_json run(const ordered_json& input, std::string& error) override {
    ordered_json out;
    if (!run_json_program(spec_.target, input, timeout_s_, out, error)) return nullptr;
    return out;
  }
  // Generation: {"task": "generate", "messages", "max_tokens", "temperature", "top_p", "seed"} ->
  // {"completion": "...", "finish_reason"?}.
  ChatReply complete(const ChatCall& call) override {
    ChatReply reply;
    ordered_json in = {{"task", "generate"}, {"messages", call.messages}, {"max_tokens", call.max_tokens},
                       {"temperature", call.sampling.temperature}, {"top_p", call.sampling.top_p}, {"seed", call.sampling.seed}};
    if (!call.json_schema.is_null()) in["json_schema"] = call.json_schema;
    const ordered_json out = run(in, reply.error);
    if (!reply.error.empty()) return reply;
    if (!out.is_object() || !out.contains("completion") || !out["completion"].is_string())
      return reply.error = spec_.label() + ": expected {\"completion\": \"...\"}, got " + out.dump().substr(0, 200), reply;
    reply.text = out["completion"].get<std::string>();
    reply.finish_reason = out.value("finish_reason", "stop");
    return reply;
  }

 private:
  int timeout_s_;
};

}  // namespace

std::unique_ptr<ModelClient> make_model_client(const ModelSpec& spec, const ClientOptions& options) {
  switch (spec.kind) {
    case ModelSpec::Kind::Exec: return std::make_unique<ExecClient>(spec, options);
    case ModelSpec::Kind::Endpoint: return std::make_unique<EndpointClient>(spec, options);
    case ModelSpec::Kind::Local:
      try {
        return std::make_unique<LocalClient>(spec, options);
      } catch (const Error& e) {
        fail_field("model", spec.label() + ": " + e.what());
      }
  }
  return nullptr;
}

}  // namespace zephyr

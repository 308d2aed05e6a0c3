#include "serve/content_filter.h"

#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

#include "core/error.h"
#include "core/subprocess.h"
#include "generate/generator.h"
#include "model/model_tokenizer.h"
#include "tokenizer/conversation.h"

namespace zephyr::serve {

namespace {

constexpr int kTimeoutMs = 30000;  // a check that takes longer has failed

const char* kVerdictSchema = R"({"type": "object", "properties": {"flagged": {"type": "boolean"}, "category": {"type": "string"}},
  "required": ["flagged", "category"], "additionalProperties": false})";

FilterVerdict parse_verdict(const std::string& text, const std::string& who) {
  FilterVerdict v;
  const std::optional<json> parsed = try_parse_json(text);
  if (!parsed) {
    v.error = who + " answered something that is not JSON: " + text.substr(0, 200);
    return v;
  }
  const json& j = *parsed;
  if (!j.is_object() || !j.contains("flagged") || !j["flagged"].is_boolean()) {
    v.error = who + " answered without a boolean \"flagged\": " + text.substr(0, 200);
    return v;
  }
  v.flagged = j["flagged"].get<bool>();
  if (j.contains("category") && j["category"].is_string()) v.category = j["category"].get<std::string>();
  return v;
}

// The question put to a model: the instructions as the system message, the text as the user's.
ordered_json classification_messages(const std::string& prompt, const std::string& role, const std::string& text) {
  return ordered_json::array({{{"role", "system"}, {"content", prompt.empty() ? default_filter_prompt() : prompt}},
                              {{"role", "user"}, {"content", "Role: " + role + "\nText:\n" + text}}});
}

// exec:PATH — one process for the server's life (restarted after it fails), one line per check.
class ExecFilter : public ContentFilter {
 public:
  explicit ExecFilter(std::string path) : path_(std::move(path)) {
    if (::access(path_.c_str(), X_OK) != 0) fail_field("filter", "exec:" + path_ + ": not an executable file");
  }
  ~ExecFilter() override { stop(); }

  FilterVerdict check(const std::string& role, const std::string& text, const ordered_json& conversation) override {
    std::lock_guard<std::mutex> lock(mu_);
    FilterVerdict v;
    if (pid_ < 0 && !start(v.error)) return v;
    const ordered_json q = {{"role", role}, {"text", text}, {"conversation", conversation}};
    const std::string line = q.dump(-1, ' ', false, ordered_json::error_handler_t::replace) + "\n";
    std::string answer;
    if (!write_all(line) || !read_line(answer)) {
      v.error = "exec:" + path_ + ": " + (errno_text_.empty() ? "the program ended" : errno_text_);
      stop();
      return v;
    }
    return parse_verdict(answer, "exec:" + path_);
  }

 private:
  bool start(std::string& error) {
    PipedChild c;
    if (!spawn_piped(path_, c, error)) return error = "exec:" + error, false;
    pid_ = c.pid, to_ = c.to, from_ = c.from;
    buf_.clear();
    return true;
  }
  void stop() {
    if (pid_ < 0) return;
    ::close(to_);
    ::close(from_);
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool write_all(const std::string& s) {
    errno_text_.clear();
    for (size_t done = 0; done < s.size();) {
      const ssize_t n = ::write(to_, s.data() + done, s.size() - done);  // SIGPIPE is ignored (make_content_filter)
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return errno_text_ = std::string("cannot write to it: ") + std::strerror(errno), false;
      done += size_t(n);
    }
    return true;
  }
  bool read_line(std::string& line) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
    for (;;) {
      if (const size_t nl = buf_.find('\n'); nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return errno_text_ = "no answer within " + std::to_string(kTimeoutMs / 1000) + " s", false;
      pollfd p{from_, POLLIN, 0};
      const int r = ::poll(&p, 1, int(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(from_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;  // the program ended
      buf_.append(chunk, size_t(n));
    }
  }

  std::string path_;
  std::mutex mu_;
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buf_, errno_text_;
};

// model:PATH — a model of its own, greedy, constrained to the verdict's schema.
class ModelFilter : public ContentFilter {
 public:
  ModelFilter(const std::string& path, std::string prompt)
      : model_(Model::load(path)), tok_(model_tokenizer(model_)), tmpl_(chat_template_of(tok_, path)), gen_(model_, tok_),
        prompt_(std::move(prompt)),
        schema_(StructuredOutput::from(JsonGrammar::from_schema(ordered_json::parse(kVerdictSchema)))) {}

  FilterVerdict check(const std::string& role, const std::string& text, const ordered_json&) override {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      const std::vector<int> ids = chat_ids(tmpl_, tok_, {{"messages", classification_messages(prompt_, role, text)}}, true);
      GenerationOptions o;
      o.sampling.temperature = 0;
      o.max_new_tokens = 64;
      o.eos_ids = model_.eos_token_ids();
      o.structured = schema_;
      const GenerationResult r = gen_.generate(ids, o, [](std::string_view) { return true; });
      return parse_verdict(r.text, "the filter model");
    } catch (const Error& e) {
      FilterVerdict v;
      v.error = std::string("the filter model: ") + e.what();
      return v;
    }
  }

 private:
  Model model_;
  Tokenizer tok_;
  ChatTemplate tmpl_;
  Generator gen_;  // keeps the instructions' tokens cached between checks
  std::string prompt_;
  std::shared_ptr<const StructuredOutput> schema_;
  std::mutex mu_;
};

// http://HOST:PORT[/PATH] — an OpenAI-compatible server's chat completions, with response_format.
class EndpointFilter : public ContentFilter {
 public:
  EndpointFilter(const std::string& url, std::string prompt, std::string model) : prompt_(std::move(prompt)), model_(std::move(model)) {
    std::string rest = url.substr(std::string("http://").size());
    const size_t slash = rest.find('/');
    host_port_ = rest.substr(0, slash);
    base_ = slash == std::string::npos ? "/v1" : rest.substr(slash);
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
    if (host_port_.empty()) fail_field("filter", url + ": expected http://HOST:PORT[/v1]");
  }

  FilterVerdict check(const std::string& role, const std::string& text, const ordered_json&) override {
    FilterVerdict v;
    httplib::Client cli("http://" + host_port_);
    cli.set_read_timeout(kTimeoutMs / 1000, 0);
    cli.set_connection_timeout(5, 0);
    const ordered_json body = {
        {"model", model_}, {"messages", classification_messages(prompt_, role, text)}, {"temperature", 0}, {"max_tokens", 64},
        {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "verdict"}, {"schema", ordered_json::parse(kVerdictSchema)}}}}}};
    auto res = cli.Post(base_ + "/chat/completions", body.dump(-1, ' ', false, ordered_json::error_handler_t::replace), "application/json");
    const std::string who = "http://" + host_port_ + base_;
    if (!res) return v.error = who + ": " + httplib::to_string(res.error()), v;
    if (res->status != 200) return v.error = who + ": HTTP " + std::to_string(res->status) + " " + res->body.substr(0, 200), v;
    try {
      const json r = try_parse_json(res->body).value_or(json());
      return parse_verdict(r.at("choices").at(0).at("message").at("content").get<std::string>(), who);
    } catch (const json::exception&) {
      return v.error = who + ": not an OpenAI chat completion: " + res->body.substr(0, 200), v;
    }
  }

 private:
  std::string prompt_, model_, host_port_, base_;
};

}  // namespace

const std::string& default_filter_prompt() {
  static const std::string p =
      "You are a content moderator. Decide whether the text below is harmful: violence or threats, hate or "
      "harassment, sexual content involving minors, encouragement of self-harm, or instructions for serious crimes. "
      "Answer with JSON only: {\"flagged\": true or false, \"category\": \"none\" or the category that applies}.";
  return p;
}

std::unique_ptr<ContentFilter> make_content_filter(const FilterOptions& o) {
  const std::string& s = o.spec;
  if (s.rfind("exec:", 0) == 0) return std::make_unique<ExecFilter>(s.substr(5));
  if (s.rfind("model:", 0) == 0) {
    try {
      return std::make_unique<ModelFilter>(s.substr(6), o.prompt);
    } catch (const Error& e) {
      fail_field("filter", s + ": " + e.what());
    }
  }
  if (s.rfind("http://", 0) == 0) return std::make_unique<EndpointFilter>(s, o.prompt, o.model_name.empty() ? "default" : o.model_name);
  if (s.rfind("https://", 0) == 0) fail_field("filter", s + ": https is not supported (put the endpoint behind http on a trusted network)");
  fail_field("filter", "\"" + s + "\": expected exec:PATH, model:PATH or http://HOST:PORT[/v1]");
}

}  // namespace zephyr::serve

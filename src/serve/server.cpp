#include "serve/server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "core/error.h"
#include "generate/generation_defaults.h"
#include "serve/openai.h"
#include "serve/web_page.h"
#include "tokenizer/conversation.h"

namespace zephyr::serve {

namespace {

using Clock = std::chrono::steady_clock;

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string random_id(const char* prefix) {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)rng());
  return std::string(prefix) + buf;
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(e.body().dump(), "application/json");
}

// The engine's output for one HTTP request: every choice's text pieces and ends, in order.
struct Job : std::enable_shared_from_this<Job> {
  struct Event {
    int choice = 0;
    std::string text;
    bool done = false;
    GenerationResult result;
    std::vector<TokenLogprob> logprobs;  // the tokens behind this piece (the rest come with the end)
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;
  std::vector<std::shared_ptr<EngineRequest>> requests;
  int remaining = 0;
  std::vector<std::vector<TokenLogprob>> pending;  // per choice: tokens sampled, text not yet sent

  void add_logprob(int choice, const TokenLogprob& lp) {
    std::lock_guard<std::mutex> lock(mu);
    pending[size_t(choice)].push_back(lp);
  }
  void push(Event e) {
    {
      std::lock_guard<std::mutex> lock(mu);
      e.logprobs.swap(pending[size_t(e.choice)]);
      if (e.done) --remaining;
      events.push_back(std::move(e));
    }
    cv.notify_all();
  }
  void cancel() {
    for (auto& r : requests) r->cancelled = true;
  }
};

// One choice's answer on its way to the client: with a filter, text is held until a check passes
// it (every filter_every tokens and at the end), so a flagged answer stops before its flagged part.
struct Gate {
  std::string held, sent;
  std::vector<TokenLogprob> held_logprobs;
  int64_t checked = 0;  // tokens generated at the last check
  bool ended = false;
};
// What goes to the client: text (with its tokens' log-probs), then maybe the choice's end.
struct Out {
  int choice = 0;
  std::string text;
  std::vector<TokenLogprob> logprobs;
  std::string finish;
};

}  // namespace

struct Server::Impl {
  const Model& model;
  const Tokenizer& tok;
  ServerOptions opt;
  std::optional<ChatTemplate> tmpl;
  SamplingParams defaults;
  Engine engine;
  httplib::Server http;
  std::atomic<bool> stopping{false};
  int64_t started = unix_now();
  std::mutex stats_mu;
  std::map<int, uint64_t> by_status;
  Clock::time_point last_scrape = Clock::now();
  uint64_t last_generated = 0;
  // Started by stop() on whichever thread asks; run() and the destructor join it. Assigned and
  // taken under stopper_mu: the stopper may already have closed the listener (so run() returns)
  // before the assignment has finished.
  std::mutex stopper_mu;
  std::thread stopper;
  std::once_flag stop_once;
  void join_stopper() {
    std::thread t;
    {
      std::lock_guard<std::mutex> lock(stopper_mu);
      t = std::move(stopper);
    }
    if (t.joinable()) t.join();
  }
  // Streamed responses not yet ended. httplib's stop() ends every chunked response at its next
  // chunk, so the stopper waits for these to write their last chunks and [DONE] first.
  std::mutex streams_mu;
  std::condition_variable streams_cv;
  int open_streams = 0;
  void stream_ended() {
    {
      std::lock_guard<std::mutex> lock(streams_mu);
      --open_streams;
    }
    streams_cv.notify_all();
  }
  void wait_for_streams() {
    // Bounded: a client that stops reading fails httplib's write timeout and ends its stream.
    std::unique_lock<std::mutex> lock(streams_mu);
    streams_cv.wait_for(lock, std::chrono::seconds(30), [this] { return open_streams == 0; });
  }
  std::unique_ptr<ContentFilter> filter;
  std::atomic<uint64_t> filter_passed{0}, filter_flagged{0}, filter_errors{0};

  Impl(const Model& m, const Tokenizer& t, ServerOptions o)
      : model(m), tok(t), opt(std::move(o)), defaults(sampling_defaults(m.generation_config)), engine(m, t, opt.engine) {
    if (!tok.chat_template().empty()) tmpl.emplace(tok.chat_template());
    if (!opt.filter.spec.empty()) filter = make_content_filter(opt.filter);
    if (opt.filter_every < 1) fail_field("filter-every", "must be at least 1");
  }

  void routes();
  void completion(const httplib::Request& req, httplib::Response& res, Endpoint e);
  // The steps of a completion request: its prompts as ids, the filter's look at it, the engine
  // requests, and the answer (a refusal, one JSON body, or an SSE stream).
  std::vector<std::vector<int>> prompt_ids(const CompletionRequest& cr, Endpoint e);
  bool request_flagged(const CompletionRequest& cr, Endpoint e, std::string& category);
  void submit(const CompletionRequest& cr, const std::vector<std::vector<int>>& prompts, const ServedAdapter* adapter, Job& job,
              httplib::Response& res);
  // The adapter a request's `model` names (null: the base); an ApiError 404 for an unknown name.
  const ServedAdapter* served(const std::optional<std::string>& name) const;
  ordered_json model_list() const;
  void send_refusal(httplib::Response& res, Endpoint e, const CompletionRequest& cr, const ResponseMeta& meta, const Usage& usage,
                    int choices, const std::string& category);
  void send_whole(httplib::Response& res, Endpoint e, const CompletionRequest& cr, const ResponseMeta& meta, Usage usage,
                  const std::shared_ptr<Job>& job);
  void send_stream(httplib::Response& res, Endpoint e, const CompletionRequest& cr, const ResponseMeta& meta, Usage usage,
                   const std::shared_ptr<Job>& job);
  // The filter's verdict on a text, counted; a failing check follows --filter-fail.
  bool flagged(const std::string& role, const std::string& text, const ordered_json& conversation, std::string& category);
  void gate(const Job::Event& ev, Gate& g, EngineRequest& req, const ordered_json& conversation, std::vector<Out>& out);
  std::string metrics();
};

void Server::Impl::routes() {
  const size_t workers = size_t(opt.engine.slots + opt.engine.queue + 4);
  http.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  http.set_payload_max_length(opt.max_body_bytes);
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (opt.api_key.empty() || req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + opt.api_key) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, ApiError(401, "invalid_request_error", "Incorrect or missing API key (send Authorization: Bearer KEY)", "",
                             "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  // httplib's own refusals (unknown path, oversized body, wrong method) in the API's error shape.
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) send_error(res, ApiError(404, "invalid_request_error", "Unknown path " + req.path, "", "unknown_url"));
    else if (res.status == 413) send_error(res, ApiError(413, "invalid_request_error", "The request body is too large", "", "payload_too_large"));
    else send_error(res, ApiError(res.status, "invalid_request_error", "HTTP " + std::to_string(res.status)));
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, "server_error", std::string("internal error: ") + e.what()));
    }
  });
  http.set_logger([this](const httplib::Request&, const httplib::Response& res) {
    std::lock_guard<std::mutex> lock(stats_mu);
    by_status[res.status] += 1;
  });
  http.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content(kWebChatPage, "text/html; charset=utf-8"); });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const EngineStats s = engine.stats();
    res.status = stopping ? 503 : 200;
    res.set_content(json{{"status", stopping ? "shutting down" : "ok"}, {"slots_idle", s.slots - s.busy}, {"slots_processing", s.busy},
                         {"queued", s.queued}}
                        .dump(),
                    "application/json");
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) { res.set_content(metrics(), "text/plain; version=0.0.4"); });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(ordered_json{{"object", "list"}, {"data", model_list()}}.dump(), "application/json");
  });
  http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    for (const ordered_json& m : model_list())
      if (m["id"] == req.matches[1]) return res.set_content(m.dump(), "application/json");
    send_error(res, ApiError(404, "invalid_request_error", "The model '" + std::string(req.matches[1]) + "' does not exist", "model",
                             "model_not_found"));
  });
  http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) { completion(req, res, Endpoint::Chat); });
  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { completion(req, res, Endpoint::Completions); });
}

void Server::Impl::completion(const httplib::Request& req, httplib::Response& res, Endpoint e) {
  std::shared_ptr<Job> job = std::make_shared<Job>();
  CompletionRequest cr;
  std::vector<std::vector<int>> prompts;
  std::string refused;  // the filter's category when it flagged the request ("" when it did not)
  bool flagged_request = false;
  const ServedAdapter* adapter = nullptr;
  try {
    if (stopping) throw ApiError(503, "server_error", "The server is shutting down");
    cr = parse_request(req.body, e, defaults);
    adapter = served(cr.model);
    prompts = prompt_ids(cr, e);
    flagged_request = filter && request_flagged(cr, e, refused);
    if (!flagged_request) submit(cr, prompts, adapter, *job, res);
  } catch (const ApiError& err) {
    // Requests already queued see `cancelled` and end without running further.
    return send_error(res, err);
  }
  const ResponseMeta meta{random_id(e == Endpoint::Chat ? "chatcmpl-" : "cmpl-"), adapter ? adapter->name : opt.model_name, unix_now()};
  Usage usage;
  for (const auto& p : prompts) usage.prompt_tokens += int64_t(p.size());
  if (flagged_request) return send_refusal(res, e, cr, meta, usage, int(prompts.size()) * cr.n, refused);
  if (!cr.stream) return send_whole(res, e, cr, meta, usage, job);
  send_stream(res, e, cr, meta, usage, job);
}

const ServedAdapter* Server::Impl::served(const std::optional<std::string>& name) const {
  if (!name || *name == opt.model_name) return nullptr;
  std::string names = "'" + opt.model_name + "'";
  for (const auto& a : opt.adapters) {
    if (a->name == *name) return a.get();
    names += ", '" + a->name + "'";
  }
  throw ApiError(404, "invalid_request_error",
                 "The model '" + *name + "' does not exist; this server serves " + names + " (GET /v1/models)", "model",
                 "model_not_found");
}

ordered_json Server::Impl::model_list() const {
  ordered_json list = ordered_json::array();
  list.push_back({{"id", opt.model_name}, {"object", "model"}, {"created", started}, {"owned_by", "zephyr"}});
  // Adapters as vLLM lists them: their base as `parent`, their directory as `root`.
  for (const auto& a : opt.adapters)
    list.push_back({{"id", a->name}, {"object", "model"}, {"created", started}, {"owned_by", "zephyr"}, {"root", a->dir.string()},
                    {"parent", opt.model_name}});
  return list;
}

std::vector<std::vector<int>> Server::Impl::prompt_ids(const CompletionRequest& cr, Endpoint e) {
  std::vector<std::vector<int>> prompts;
  if (e == Endpoint::Chat) {
    if (!tmpl) bad_request("messages", "this model has no chat template; use /v1/completions");
    try {
      prompts.push_back(chat_ids(*tmpl, tok, {{"messages", cr.messages}}, true));
    } catch (const Error& err) {
      bad_request("messages", err.what());
    }
  } else if (!cr.prompt_ids.empty()) {
    for (int id : cr.prompt_ids)
      if (id < 0 || id >= tok.vocab_size()) bad_request("prompt", "token id " + std::to_string(id) + " is outside the vocabulary");
    prompts.push_back(cr.prompt_ids);
  } else {
    for (const std::string& p : cr.prompts) {
      try {
        prompts.push_back(tok.encode(p, true));
      } catch (const Error& err) {
        bad_request("prompt", err.what());
      }
    }
  }
  return prompts;
}

bool Server::Impl::request_flagged(const CompletionRequest& cr, Endpoint e, std::string& category) {
  std::string text;  // the user's last message, or the prompt
  if (e == Endpoint::Chat) {
    for (auto it = cr.messages.rbegin(); it != cr.messages.rend() && text.empty(); ++it)
      if ((*it)["role"] == "user") text = (*it)["content"].get<std::string>();
  } else {
    for (const std::string& p : cr.prompts) text += p;
    if (cr.prompts.empty()) text = tok.decode(cr.prompt_ids);
  }
  return !text.empty() && flagged("user", text, cr.messages.is_null() ? ordered_json::array() : cr.messages, category);
}

void Server::Impl::submit(const CompletionRequest& cr, const std::vector<std::vector<int>>& prompts, const ServedAdapter* adapter, Job& job,
                          httplib::Response& res) {
  const int total = int(prompts.size()) * cr.n;
  job.remaining = total;
  job.pending.resize(size_t(total));
  std::weak_ptr<Job> weak = job.weak_from_this();
  int index = 0;
  for (const std::vector<int>& p : prompts)
    for (int i = 0; i < cr.n; ++i, ++index) {
      auto r = std::make_shared<EngineRequest>();
      r->prompt = p;
      r->adapter = adapter;
      r->options = cr.options;
      if (!cr.ignore_eos) r->options.eos_ids = model.eos_token_ids();
      if (r->options.max_new_tokens < 0) r->options.max_new_tokens = engine.slot_context() - int64_t(p.size());
      r->options.sampling.seed = cr.options.sampling.seed + uint64_t(index);  // choices differ, and repeat with the seed
      // Weak: an answered (or refused) HTTP request drops its job while the engine may still be
      // ending the cancelled completions.
      r->on_text = [weak, index](std::string_view s) {
        auto j = weak.lock();
        if (j) j->push({index, std::string(s), false, {}, {}});
        return j != nullptr;
      };
      if (cr.options.top_logprobs >= 0)
        r->on_logprob = [weak, index](const TokenLogprob& lp) {
          if (auto j = weak.lock()) j->add_logprob(index, lp);
        };
      r->on_done = [weak, index](const GenerationResult& g) {
        if (auto j = weak.lock()) j->push({index, "", true, g, {}});
      };
      job.requests.push_back(r);
    }
  for (auto& r : job.requests) {
    bool queued = false;
    try {
      queued = engine.submit(r);
    } catch (const Error& err) {  // prompt or max_tokens beyond the context, bad sampling values
      job.cancel();
      bad_request(err.field(), err.reason());
    }
    if (!queued) {
      job.cancel();
      res.set_header("Retry-After", "1");
      throw ApiError(503, "server_error", "The server is busy (every slot and the queue are full); retry shortly", "", "overloaded");
    }
  }
}

void Server::Impl::send_refusal(httplib::Response& res, Endpoint e, const CompletionRequest& cr, const ResponseMeta& meta,
                                const Usage& usage, int choices, const std::string& category) {
  const std::string why = "The request was flagged by the content filter" + (category.empty() ? "" : " (" + category + ")") + ".";
  std::vector<GenerationResult> results(static_cast<size_t>(choices));
  for (auto& r : results) r.finish_reason = "content_filter";
  if (!cr.stream) {
    const std::vector<std::string> refusals(static_cast<size_t>(choices), why);
    res.set_content(completion_response(e, meta, results, usage, tok, cr.options.top_logprobs >= 0, &refusals).dump(), "application/json");
    return;
  }
  std::string body;
  const std::string finish = "content_filter";
  for (int i = 0; i < choices; ++i) {
    if (e == Endpoint::Chat) body += sse(stream_chunk(e, meta, i, nullptr, nullptr, true, cr.include_usage));
    body += sse(stream_chunk(e, meta, i, nullptr, &finish, false, cr.include_usage));
  }
  if (cr.include_usage) body += sse(usage_chunk(e, meta, usage));
  res.set_content(body + "data: [DONE]\n\n", "text/event-stream");
}

void Server::Impl::send_whole(httplib::Response& res, Endpoint e, const CompletionRequest& cr, const ResponseMeta& meta, Usage usage,
                              const std::shared_ptr<Job>& job) {
  const size_t choices = job->requests.size();
  std::vector<Gate> gates(choices);
  const ordered_json conversation = cr.messages.is_null() ? ordered_json::array() : cr.messages;
  std::vector<GenerationResult> results(choices);
  for (bool finished = false; !finished;) {
    std::deque<Job::Event> events;
    {
      std::unique_lock<std::mutex> lock(job->mu);
      job->cv.wait(lock, [&] { return !job->events.empty() || job->remaining == 0; });
      events.swap(job->events);
      finished = job->remaining == 0;
    }
    std::vector<Out> outs;
    for (Job::Event& ev : events) {
      gate(ev, gates[size_t(ev.choice)], *job->requests[size_t(ev.choice)], conversation, outs);
      if (ev.done) results[size_t(ev.choice)].tokens = ev.result.tokens;
    }
    for (Out& o : outs) {
      GenerationResult& r = results[size_t(o.choice)];
      r.text += o.text;
      r.logprobs.insert(r.logprobs.end(), o.logprobs.begin(), o.logprobs.end());
      if (!o.finish.empty()) r.finish_reason = o.finish;
    }
  }
  for (auto& r : results) usage.completion_tokens += int64_t(r.tokens.size());
  res.set_content(completion_response(e, meta, results, usage, tok, cr.options.top_logprobs >= 0)
                      .dump(-1, ' ', false, json::error_handler_t::replace),
                  "application/json");
}

void Server::Impl::send_stream(httplib::Response& res, Endpoint e, const CompletionRequest& cr, const ResponseMeta& meta, Usage usage,
                               const std::shared_ptr<Job>& job) {
  const size_t choices = job->requests.size();
  auto gates = std::make_shared<std::vector<Gate>>(choices);
  const ordered_json conversation = cr.messages.is_null() ? ordered_json::array() : cr.messages;
  const bool include_usage = cr.include_usage, logprobs = cr.options.top_logprobs >= 0;
  auto offsets = std::make_shared<std::vector<int64_t>>(choices, 0);  // completions' text_offset
  auto announced = std::make_shared<bool>(false);
  auto completion_tokens = std::make_shared<int64_t>(0);
  res.set_header("Cache-Control", "no-cache");
  {
    std::lock_guard<std::mutex> lock(streams_mu);
    ++open_streams;
  }
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, job, gates, conversation, meta, e, include_usage, logprobs, offsets, announced, completion_tokens, usage](
          size_t, httplib::DataSink& sink) mutable {
        auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
        if (!*announced && e == Endpoint::Chat) {  // each choice opens with the assistant role
          for (int i = 0; i < int(job->requests.size()); ++i)
            if (!write(sse(stream_chunk(e, meta, i, nullptr, nullptr, true, include_usage)))) return job->cancel(), false;
        }
        *announced = true;
        std::deque<Job::Event> events;
        bool finished = false;
        {
          std::unique_lock<std::mutex> lock(job->mu);
          // Wake now and then to notice a client that went away while nothing was written.
          while (job->events.empty() && !job->cv.wait_for(lock, std::chrono::milliseconds(250), [&] { return !job->events.empty(); }))
            if (!sink.is_writable()) {
              lock.unlock();
              job->cancel();
              return false;
            }
          events.swap(job->events);
          finished = job->remaining == 0;
        }
        std::vector<Out> outs;
        for (Job::Event& ev : events) {
          gate(ev, (*gates)[size_t(ev.choice)], *job->requests[size_t(ev.choice)], conversation, outs);
          if (ev.done) *completion_tokens += int64_t(ev.result.tokens.size());
        }
        for (const Out& o : outs) {
          json lp;
          if (logprobs) {
            int64_t& offset = (*offsets)[size_t(o.choice)];
            lp = logprobs_json(e, tok, o.logprobs, offset);
            for (const TokenLogprob& t : o.logprobs) offset += int64_t(tok.token_bytes(t.id).size());
          }
          const json* lpp = logprobs && !o.logprobs.empty() ? &lp : nullptr;
          bool ok = true;
          if (!o.text.empty() || lpp) ok = write(sse(stream_chunk(e, meta, o.choice, &o.text, nullptr, false, include_usage, lpp)));
          if (ok && !o.finish.empty()) ok = write(sse(stream_chunk(e, meta, o.choice, nullptr, &o.finish, false, include_usage)));
          if (!ok) return job->cancel(), false;  // the client disconnected: free its slots now
        }
        if (finished) {
          if (include_usage) {
            usage.completion_tokens = *completion_tokens;
            if (!write(sse(usage_chunk(e, meta, usage)))) return false;
          }
          if (!write("data: [DONE]\n\n")) return false;
          sink.done();
        }
        return true;
      },
      [this, job](bool) {  // the response ended (or broke): nothing may keep running for it
        job->cancel();
        stream_ended();
      });
}

bool Server::Impl::flagged(const std::string& role, const std::string& text, const ordered_json& conversation, std::string& category) {
  const FilterVerdict v = filter->check(role, text, conversation);
  if (!v.error.empty()) {
    filter_errors += 1;
    std::fprintf(stderr, "zephyr: filter: %s (counted as %s)\n", v.error.c_str(), opt.filter_fail_closed ? "flagged" : "clean");
    category = "filter_error";
    return opt.filter_fail_closed;
  }
  (v.flagged ? filter_flagged : filter_passed) += 1;
  category = v.category;
  return v.flagged;
}

void Server::Impl::gate(const Job::Event& ev, Gate& g, EngineRequest& req, const ordered_json& conversation, std::vector<Out>& out) {
  if (g.ended) return;  // cut by the filter: this is the engine's end of the cancelled choice
  const auto release = [&] {
    if (g.held.empty() && g.held_logprobs.empty()) return;
    out.push_back({ev.choice, std::move(g.held), std::move(g.held_logprobs), ""});
    g.held.clear();
    g.held_logprobs.clear();
  };
  g.held += ev.text;
  g.held_logprobs.insert(g.held_logprobs.end(), ev.logprobs.begin(), ev.logprobs.end());
  if (filter) {
    const int64_t n = req.generated.load();
    // Every filter_every tokens, and at the end whatever was not checked yet.
    if (ev.done ? !g.held.empty() : n - g.checked >= opt.filter_every) {
      g.checked = n;
      std::string category;
      if (flagged("assistant", g.sent + g.held, conversation, category)) {
        g.ended = true;
        req.cancelled = true;
        out.push_back({ev.choice, "", {}, "content_filter"});
        return;
      }
      g.sent += g.held;
    } else if (!ev.done) {
      return;  // held until checked
    }
  }
  release();
  if (ev.done) {
    g.ended = true;
    out.push_back({ev.choice, "", {}, ev.result.finish_reason});
  }
}

std::string Server::Impl::metrics() {
  const EngineStats s = engine.stats();
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& samples) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + samples;
  };
  auto line = [](const std::string& name, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " %.17g\n", v);
    return name + buf;
  };
  std::string statuses;
  double rate = 0;
  {
    std::lock_guard<std::mutex> lock(stats_mu);
    for (auto& [status, n] : by_status) statuses += line("zephyr_requests_total{status=\"" + std::to_string(status) + "\"}", double(n));
    const auto now = Clock::now();
    const double dt = std::chrono::duration<double>(now - last_scrape).count();
    if (dt > 0) rate = double(s.generated_tokens - last_generated) / dt;
    last_scrape = now;
    last_generated = s.generated_tokens;
  }
  metric("zephyr_requests_total", "counter", "HTTP requests answered, by status.", statuses);
  metric("zephyr_completions_total", "counter", "Completions (choices) the engine started.", line("zephyr_completions_total", double(s.requests)));
  metric("zephyr_prompt_tokens_total", "counter", "Prompt tokens of started completions.", line("zephyr_prompt_tokens_total", double(s.prompt_tokens)));
  metric("zephyr_prompt_tokens_evaluated_total", "counter", "Prompt tokens run (the rest came from a slot's cached prefix).",
         line("zephyr_prompt_tokens_evaluated_total", double(s.prompt_tokens_evaluated)));
  metric("zephyr_generated_tokens_total", "counter", "Tokens generated.", line("zephyr_generated_tokens_total", double(s.generated_tokens)));
  metric("zephyr_generated_tokens_per_second", "gauge", "Tokens generated per second since the previous scrape.",
         line("zephyr_generated_tokens_per_second", rate));
  metric("zephyr_engine_steps_total", "counter", "Batched forward passes.", line("zephyr_engine_steps_total", double(s.steps)));
  metric("zephyr_queue_depth", "gauge", "Requests waiting for a slot.", line("zephyr_queue_depth", s.queued));
  metric("zephyr_slots", "gauge", "Sequences the engine decodes together.", line("zephyr_slots", s.slots));
  metric("zephyr_slots_busy", "gauge", "Slots serving a request.", line("zephyr_slots_busy", s.busy));
  metric("zephyr_kv_cache_tokens", "gauge", "Tokens held in the slots' KV caches.", line("zephyr_kv_cache_tokens", double(s.cached_tokens)));
  if (filter)
    metric("zephyr_filter_checks_total", "counter", "Content-filter checks by result (error: the check failed; see --filter-fail).",
           line("zephyr_filter_checks_total{result=\"clean\"}", double(filter_passed)) +
               line("zephyr_filter_checks_total{result=\"flagged\"}", double(filter_flagged)) +
               line("zephyr_filter_checks_total{result=\"error\"}", double(filter_errors)));
  metric("zephyr_kv_cache_usage_ratio", "gauge", "KV-cache tokens over slots x slot context.",
         line("zephyr_kv_cache_usage_ratio", s.context_tokens ? double(s.cached_tokens) / double(s.context_tokens) : 0.0));
  return out;
}

Server::Server(const Model& model, const Tokenizer& tok, ServerOptions options)
    : impl_(std::make_unique<Impl>(model, tok, std::move(options))) {
  impl_->routes();
}

Server::~Server() {
  stop(true);
  impl_->join_stopper();
}

void Server::run(const std::function<void(int)>& on_listening) {
  Impl& s = *impl_;
  const int port = s.opt.port == 0 ? s.http.bind_to_any_port(s.opt.host) : (s.http.bind_to_port(s.opt.host, s.opt.port) ? s.opt.port : -1);
  if (port < 0) fail(s.opt.host + ":" + std::to_string(s.opt.port), "cannot listen there (in use, or not an address of this machine)");
  if (on_listening) on_listening(port);
  s.http.listen_after_bind();
  s.join_stopper();
}

int64_t Server::slot_context() const { return impl_->engine.slot_context(); }

void Server::stop(bool cancel) {
  Impl& s = *impl_;
  s.stopping = true;
  if (cancel) s.engine.shutdown(true);  // returns at once if a graceful stop is already waiting: it ends sooner now
  std::call_once(s.stop_once, [&s, cancel] {
    // Off the caller's thread: the engine finishes (or cancels) what is in flight, the handlers
    // send their last chunks, then the listener closes.
    std::lock_guard<std::mutex> lock(s.stopper_mu);
    s.stopper = std::thread([&s, cancel] {
      s.engine.shutdown(cancel);
      s.wait_for_streams();
      s.http.stop();
    });
  });
}

}  // namespace zephyr::serve

// The batched engine: requests decoded together get exactly the tokens each gets alone (greedy
// and sampled), a finished request's cache serves the next turn's prefix, the queue is bounded.
#include <gtest/gtest.h>


#include <filesystem>
#include <atomic>
#include <future>
#include <thread>

#include "core/error.h"
#include "generate/engine.h"
#include "model/init.h"
#include "model/served_adapter.h"
#include "test_util.h"

using namespace zephyr;
namespace fs = std::filesystem;

namespace {

// A tiny random Mistral with Mistral's real vocabulary (so answers decode to text).
fs::path tiny_model() {
  static const fs::path d = [] {
    const fs::path p = test::fresh_temp_path("engine");
    InitOptions o;
    o.config.hidden_size = 32;
    o.config.intermediate_size = 64;
    o.config.num_hidden_layers = 2;
    o.config.num_attention_heads = 4;
    o.config.num_key_value_heads = 2;
    o.config.head_dim = 8;
    o.config.vocab_size = 32000;
    o.config.max_position_embeddings = 512;
    o.config.bos_token_id = 1;
    o.config.eos_token_ids = {2};
    o.dtype = DType::BF16;
    o.seed = 3;
    o.tokenizer = fs::path(ZEPHYR_REF_MODELS) / "tokenizer-llama2" / "models" / "tokenizer.json";
    init_model(p, o);
    return p;
  }();
  return d;
}

struct Answer {
  std::vector<int> tokens;
  std::string text, streamed, finish;
  int64_t evaluated = 0;
};

std::shared_ptr<EngineRequest> request(const Tokenizer& tok, const std::string& prompt, double temp, uint64_t seed, int64_t n,
                                       std::promise<Answer>& done, std::string* streamed, const ServedAdapter* adapter = nullptr) {
  auto r = std::make_shared<EngineRequest>();
  r->adapter = adapter;
  r->prompt = tok.encode(prompt, true);
  r->options.sampling.temperature = temp;
  r->options.sampling.seed = seed;
  r->options.max_new_tokens = n;
  r->on_text = [streamed](std::string_view s) {
    *streamed += s;
    return true;
  };
  r->on_done = [&done, streamed](const GenerationResult& g) {
    done.set_value({g.tokens, g.text, *streamed, g.finish_reason, g.prompt_evaluated});
  };
  return r;
}

Answer run_alone(const Model& m, const Tokenizer& tok, const std::string& prompt, double temp, uint64_t seed, int64_t n,
                 const ServedAdapter* adapter = nullptr) {
  Engine e(m, tok, {});
  std::promise<Answer> done;
  std::string streamed;
  EXPECT_TRUE(e.submit(request(tok, prompt, temp, seed, n, done, &streamed, adapter)));
  return done.get_future().get();
}

}  // namespace

TEST(Engine, EachRequestGetsItsSoloTokensWhateverSharesTheBatch) {
  const Model m = Model::load(tiny_model());
  const Tokenizer tok = Tokenizer::load(tiny_model());
  const std::vector<std::string> prompts = {"Hello there", "A much longer prompt that takes more than one step to read, "
                                            "with enough words to need several chunks of the prompt budget",
                                            "Short", "Hello there"};
  for (double temp : {0.0, 0.9}) {
    std::vector<Answer> alone;
    for (size_t i = 0; i < prompts.size(); ++i) alone.push_back(run_alone(m, tok, prompts[i], temp, 100 + i, 24));
    EngineOptions o;
    o.slots = 3;          // one request waits for a slot
    o.step_tokens = 7;    // prompts are cut into many passes beside the others' decoding
    Engine e(m, tok, o);
    std::vector<std::promise<Answer>> done(prompts.size());
    std::vector<std::string> streamed(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(e.submit(request(tok, prompts[i], temp, 100 + i, 24, done[i], &streamed[i])));
    for (size_t i = 0; i < prompts.size(); ++i) {
      const Answer a = done[i].get_future().get();
      EXPECT_EQ(a.tokens, alone[i].tokens) << "temp " << temp << " request " << i;
      EXPECT_EQ(a.text, alone[i].text);
      EXPECT_EQ(a.streamed, a.text);
      EXPECT_EQ(a.finish, alone[i].finish);
    }
    EXPECT_EQ(e.stats().busy, 0);
  }
}

TEST(Engine, TheNextTurnReusesTheCachedPrefixAndAnswersTheSame) {
  const Model m = Model::load(tiny_model());
  const Tokenizer tok = Tokenizer::load(tiny_model());
  const Answer fresh = run_alone(m, tok, "One two three four five six", 0.8, 7, 12);
  Engine e(m, tok, {});
  for (int turn = 0; turn < 2; ++turn) {
    std::promise<Answer> done;
    std::string streamed;
    ASSERT_TRUE(e.submit(request(tok, "One two three four five six", 0.8, 7, 12, done, &streamed)));
    const Answer a = done.get_future().get();
    EXPECT_EQ(a.tokens, fresh.tokens) << "turn " << turn;
    EXPECT_EQ(a.evaluated, turn == 0 ? int64_t(tok.encode("One two three four five six").size()) : 1) << "turn " << turn;
  }
}

// Requests for different adapters (and the base) share batches and each gets its solo tokens; a
// slot's cache serves the next request only when it names the same adapter.
TEST(Engine, RequestsForDifferentAdaptersShareBatchesAndNeverEachOthersCache) {
  const Model m = Model::load(tiny_model());
  const Tokenizer tok = Tokenizer::load(tiny_model());
  const ServedAdapter x = ServedAdapter::make("x", test::random_adapter(m.config, 4, {"q_proj", "v_proj", "down_proj"}, true, 1), m);
  const ServedAdapter y = ServedAdapter::make("y", test::random_adapter(m.config, 8, {"o_proj", "up_proj"}, false, 2), m);
  const std::string prompt = "One two three four five six";
  const std::vector<const ServedAdapter*> which = {&x, nullptr, &y, &x, &y};
  std::vector<Answer> alone;
  for (size_t i = 0; i < which.size(); ++i) alone.push_back(run_alone(m, tok, prompt, 0.9, 5 + i % 2, 16, which[i]));
  EXPECT_NE(alone[0].tokens, alone[1].tokens);
  EXPECT_NE(alone[1].tokens, alone[2].tokens);
  EngineOptions o;
  o.slots = 3;
  o.step_tokens = 5;
  Engine e(m, tok, o);
  std::vector<std::promise<Answer>> done(which.size());
  std::vector<std::string> streamed(which.size());
  for (size_t i = 0; i < which.size(); ++i) ASSERT_TRUE(e.submit(request(tok, prompt, 0.9, 5 + i % 2, 16, done[i], &streamed[i], which[i])));
  for (size_t i = 0; i < which.size(); ++i) EXPECT_EQ(done[i].get_future().get().tokens, alone[i].tokens) << "request " << i;
  // One slot, the same prompt through x, the base, x again: only the repeat reuses the cache.
  o.slots = 1;
  Engine one(m, tok, o);
  const int64_t n = int64_t(tok.encode(prompt, true).size());
  for (auto [adapter, evaluated, want] : {std::tuple{&x, n, 0}, {nullptr, n, 1}, {&x, n, 0}, {&x, int64_t(1), 0}}) {
    std::promise<Answer> d;
    std::string s;
    ASSERT_TRUE(one.submit(request(tok, prompt, 0.9, 5 + want % 2, 16, d, &s, adapter)));
    const Answer a = d.get_future().get();
    EXPECT_EQ(a.tokens, alone[size_t(want)].tokens);
    EXPECT_EQ(a.evaluated, evaluated);
  }
}

TEST(Engine, LimitsAreErrorsNamingTheField) {
  const Model m = Model::load(tiny_model());
  const Tokenizer tok = Tokenizer::load(tiny_model());
  EngineOptions o;
  o.slot_context = 64;
  o.slots = 1;
  o.queue = 0;
  Engine e(m, tok, o);
  std::promise<Answer> d1, d2;
  std::string s1, s2;
  auto r = request(tok, "hi", 0, 1, 100, d1, &s1);
  try {
    e.submit(r);
    FAIL() << "no error";
  } catch (const Error& err) {
    EXPECT_EQ(err.field(), "max_tokens");
  }
  r->options.sampling.top_p = 0;
  r->options.max_new_tokens = 10;
  try {
    e.submit(r);
    FAIL() << "no error";
  } catch (const Error& err) {
    EXPECT_EQ(err.field(), "top_p");
  }
  // One slot, no queue: a second request while the first runs is refused. The first holds its
  // slot (its text callback waits) until it is cancelled.
  auto a = request(tok, "hi", 0, 1, 50, d1, &s1), b = request(tok, "hi", 0, 1, 5, d2, &s2);
  std::atomic<bool> streaming{false};
  EngineRequest* held = a.get();
  a->on_text = [&streaming, held](std::string_view) {
    streaming = true;
    while (!held->cancelled.load()) std::this_thread::yield();
    return false;
  };
  ASSERT_TRUE(e.submit(a));
  while (!streaming.load()) std::this_thread::yield();
  EXPECT_FALSE(e.submit(b));
  a->cancelled = true;
  EXPECT_EQ(d1.get_future().get().finish, "cancelled");
}

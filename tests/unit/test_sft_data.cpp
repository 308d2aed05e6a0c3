// Chat masking on a real Zephyr conversation (Mistral's vocabulary, zephyr-7b-beta's template):
// the labelled tokens are exactly the assistant answers and the EOS that ends each one.
#include <gtest/gtest.h>


#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/json_file.h"
#include "kernels/cross_entropy.h"
#include "model/training.h"
#include "train/dpo_data.h"
#include "train/sft_data.h"
#include "tokenizer/conversation.h"
#include "test_util.h"

using namespace zephyr;
namespace fs = std::filesystem;

namespace {

const char* kZephyrTemplate =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

fs::path zephyr_tokenizer() {
  const fs::path d = test::fresh_temp_path("sft-tokenizer");
  fs::create_directories(d);
  fs::copy_file(fs::path(ZEPHYR_REF_MODELS) / "tokenizer-llama2" / "models" / "tokenizer.json", d / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  json cfg = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"add_bos_token", true}, {"chat_template", kZephyrTemplate}};
  write_file_atomic(d / "tokenizer_config.json", cfg.dump());
  return d;
}

// Two assistant turns, the second over two lines.
ordered_json pirate_conversation() {
  return ordered_json::parse(R"({"messages": [
    {"role": "system", "content": "You are a pirate."},
    {"role": "user", "content": "How many helicopters can a human eat?"},
    {"role": "assistant", "content": "Arr, none at all, matey!"},
    {"role": "user", "content": "Why not?"},
    {"role": "assistant", "content": "They be made of steel.\nAnd rotors."}]})");
}

}  // namespace

TEST(SftData, OnlyAssistantTurnsAndTheirEosCarryLoss) {
  const Tokenizer tok = Tokenizer::load(zephyr_tokenizer());
  const ChatTemplate tmpl(tok.chat_template());
  const ordered_json row = pirate_conversation();
  const TokenizedRow r = tokenize_conversation(tmpl, tok, row);
  ASSERT_EQ(r.input_ids.size(), r.labels.size());
  EXPECT_EQ(r.input_ids[0], tok.bos_id());
  EXPECT_EQ(r.input_ids, tok.encode(render_chat(tmpl, tok, row, false), true));
  // Collect the labelled runs.
  std::vector<std::vector<int>> runs;
  for (size_t t = 0; t < r.labels.size(); ++t) {
    if (r.labels[t] == kIgnoreIndex) continue;
    EXPECT_EQ(r.labels[t], r.input_ids[t]);
    if (t == 0 || r.labels[t - 1] == kIgnoreIndex) runs.emplace_back();
    runs.back().push_back(r.labels[t]);
  }
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(tok.decode(runs[0], false), "Arr, none at all, matey!</s>");
  EXPECT_EQ(tok.decode(runs[1], false), "They be made of steel.\nAnd rotors.</s>");
  EXPECT_EQ(runs[0].back(), tok.eos_id());
  EXPECT_EQ(runs[1].back(), tok.eos_id());
}

TEST(SftData, TokenizedRowsPaddingAndErrors) {
  const ordered_json a = ordered_json::parse(R"({"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]})");
  const ordered_json b = ordered_json::parse(R"({"input_ids": [9, 10]})");
  const auto ra = sft_row(a, nullptr, nullptr, 3, "f:1"), rb = sft_row(b, nullptr, nullptr, 0, "f:2");
  EXPECT_EQ(ra.input_ids, (std::vector<int>{5, 6, 7}));
  EXPECT_EQ(rb.labels, (std::vector<int>{9, 10}));  // no labels: every token is a target
  const TokenBatch batch = make_batch({ra, rb}, 2);
  EXPECT_EQ(batch.seq, 3);
  EXPECT_EQ(batch.input_ids, (std::vector<int>{5, 6, 7, 9, 10, 2}));
  EXPECT_EQ(batch.labels, (std::vector<int>{-100, -100, 7, 9, 10, -100}));
  EXPECT_EQ(count_targets(batch), 2);  // 7 (after the shift), 10
  try {
    sft_row(ordered_json::parse(R"({"input_ids": [1, 2], "labels": [1]})"), nullptr, nullptr, 0, "data.jsonl:7");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.jsonl:7"), std::string::npos);
  }
  EXPECT_THROW(sft_row(ordered_json::parse(R"({"text": "x"})"), nullptr, nullptr, 0, "d:1"), Error);
  EXPECT_THROW(sft_row(ordered_json::parse(R"({"messages": []})"), nullptr, nullptr, 0, "d:1"), Error);
}

TEST(DpoData, PromptThroughTheTemplateCompletionIsTheAnswerAndEos) {
  const Tokenizer tok = Tokenizer::load(zephyr_tokenizer());
  const ChatTemplate tmpl(tok.chat_template());
  const ordered_json row = ordered_json::parse(R"({"prompt": "Why is the sky blue?",
    "chosen": [{"role": "user", "content": "Why is the sky blue?"}, {"role": "assistant", "content": "Rayleigh scattering."}],
    "rejected": [{"role": "user", "content": "Why is the sky blue?"}, {"role": "assistant", "content": "Paint."}],
    "score_chosen": 8.5, "score_rejected": 3.0})");
  const PreferencePair p = preference_pair(row, &tok, &tmpl, 0, 0, "pairs.jsonl:1");
  const std::vector<int> prompt = tok.encode("<|user|>\nWhy is the sky blue?</s>\n<|assistant|>\n", true);
  for (const TokenizedRow* r : {&p.chosen, &p.rejected}) {
    ASSERT_GT(r->input_ids.size(), prompt.size());
    EXPECT_EQ(std::vector<int>(r->input_ids.begin(), r->input_ids.begin() + long(prompt.size())), prompt);
    for (size_t t = 0; t < prompt.size(); ++t) EXPECT_EQ(r->labels[t], kIgnoreIndex);  // the prompt carries no loss
    EXPECT_EQ(r->labels.back(), tok.eos_id());
  }
  std::vector<int> answer(p.chosen.labels.begin() + long(prompt.size()), p.chosen.labels.end());
  EXPECT_EQ(tok.decode(answer, false), "Rayleigh scattering.</s>");
  // Plain strings give the same pair.
  const PreferencePair q = preference_pair(
      ordered_json::parse(R"({"prompt": "Why is the sky blue?", "chosen": "Rayleigh scattering.", "rejected": "Paint."})"), &tok,
      &tmpl, 0, 0, "pairs.jsonl:2");
  EXPECT_EQ(q.chosen.input_ids, p.chosen.input_ids);
  EXPECT_EQ(q.rejected.labels, p.rejected.labels);
  // TRL's truncation: the prompt keeps its end, then completions are cut to max_length.
  const PreferencePair t = preference_pair(row, &tok, &tmpl, int64_t(prompt.size()), 4, "pairs.jsonl:1");
  EXPECT_EQ(std::vector<int>(t.chosen.input_ids.begin(), t.chosen.input_ids.begin() + 4),
            std::vector<int>(prompt.end() - 4, prompt.end()));
  EXPECT_EQ(t.chosen.input_ids.size(), 4 + answer.size());  // fits once the prompt is cut
  const PreferencePair u = preference_pair(row, &tok, &tmpl, int64_t(prompt.size()) + 2, 512, "pairs.jsonl:1");
  EXPECT_EQ(u.chosen.input_ids.size(), prompt.size() + 2);  // prompt within max_prompt_length: completions are cut
  try {
    preference_pair(ordered_json::parse(R"({"prompt": "x", "chosen": [{"role": "user", "content": "x"}], "rejected": "y"})"),
                    &tok, &tmpl, 0, 0, "pairs.jsonl:9");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pairs.jsonl:9"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("assistant"), std::string::npos);
  }
}

// The one BOS rule: what training sees for a conversation starts with exactly what generation
// feeds for each of its prompts, and the assistant's labels start right where that prompt ends.
TEST(ChatIds, TrainingIdsBeginWithTheGenerationPromptIdsOfEveryTurn) {
  const Tokenizer tok = Tokenizer::load(zephyr_tokenizer());
  const ChatTemplate tmpl(tok.chat_template());
  const ordered_json row = pirate_conversation();
  const TokenizedRow r = tokenize_conversation(tmpl, tok, row);
  EXPECT_EQ(r.input_ids, chat_ids(tmpl, tok, row, false));
  for (size_t turn : {size_t(2), size_t(4)}) {
    ordered_json prompt = row;
    prompt["messages"] = ordered_json(row["messages"].begin(), row["messages"].begin() + long(turn));
    const std::vector<int> gen = chat_ids(tmpl, tok, prompt, true);
    ASSERT_EQ(gen[0], tok.bos_id());
    ASSERT_LT(gen.size(), r.input_ids.size());
    EXPECT_TRUE(std::equal(gen.begin(), gen.end(), r.input_ids.begin())) << "turn " << turn;
    EXPECT_EQ(r.labels[gen.size() - 1], kIgnoreIndex);
    EXPECT_NE(r.labels[gen.size()], kIgnoreIndex) << "turn " << turn;
  }
}

// A template that writes BOS itself (Mistral-Instruct, Llama-3) gets no second one; a text
// without it gets the tokenizer's.
TEST(ChatIds, BosNeverMissingNeverDoubled) {
  const Tokenizer tok = Tokenizer::load(zephyr_tokenizer());
  const std::vector<int> plain = encode_chat_text(tok, "[INST] hi [/INST]");
  const std::vector<int> own = encode_chat_text(tok, "<s>[INST] hi [/INST]");
  EXPECT_EQ(plain, own);
  EXPECT_EQ(plain[0], tok.bos_id());
  EXPECT_NE(plain[1], tok.bos_id());
  EXPECT_EQ(plain, tok.encode("[INST] hi [/INST]", true));
}

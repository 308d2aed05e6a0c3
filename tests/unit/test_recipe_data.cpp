// The recipe's data stages on cases written out by hand: the checker's grades, the teacher's files
// (deterministic, held out, answers the checker accepts), the filter's rules, the rule judge.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "data/chat_filter.h"
#include "data/rule_judge.h"
#include "data/teacher.h"
#include "io/json_file.h"
#include "test_util.h"

using namespace zephyr;
namespace fs = std::filesystem;

namespace {

ordered_json chat(const std::string& system, std::vector<std::string> turns) {
  ordered_json m = ordered_json::array();
  if (!system.empty()) m.push_back({{"role", "system"}, {"content", system}});
  for (size_t i = 0; i < turns.size(); ++i) m.push_back({{"role", i % 2 == 0 ? "user" : "assistant"}, {"content", turns[i]}});
  return m;
}

std::vector<ordered_json> rows(const fs::path& p) {
  std::vector<ordered_json> v;
  std::ifstream in(p);
  for_each_jsonl(in, p.string(), [&](const ordered_json& r, size_t) { v.push_back(r); });
  return v;
}

const std::string kPirate = "You are a friendly chatbot who always responds in the style of a pirate";

}  // namespace

TEST(Teacher, ChecksAnswersByHand) {
  auto c = check_answer(chat("", {"What is 12 times 8?"}), "12 times 8 is 96.");
  EXPECT_TRUE(c.known && c.correct && c.persona && c.length_ok);
  EXPECT_EQ(c.category, "arithmetic");
  EXPECT_EQ(c.score(), 10);
  // The result must be the last number written.
  EXPECT_FALSE(check_answer(chat("", {"What is 12 times 8?"}), "96? No: 12 times 8 is 98.").correct);
  EXPECT_FALSE(check_answer(chat("", {"What is 12 times 8?"}), "It is 96.5.").correct);
  EXPECT_EQ(check_answer(chat("", {"What is 12 times 8?"}), "It is 95.").score(), 5);
  EXPECT_TRUE(check_answer(chat("", {"What is 30 minus 42?"}), "30 minus 42 is -12.").correct);
  // Follow-ups are solved from the turn before.
  EXPECT_TRUE(check_answer(chat("", {"What is 3 plus 4?", "7", "And doubled?"}), "Twice 7 is 14.").correct);
  EXPECT_TRUE(check_answer(chat("", {"What is 3 plus 4?", "8 (wrong)", "And what is that plus 5?"}), "12").correct);
  EXPECT_TRUE(check_answer(chat("", {"What is the capital of France?", "Paris", "And what about Peru?"}), "Lima, of course.").correct);
  EXPECT_TRUE(check_answer(chat("", {"How many legs does a spider have?", "8", "And what about an ant?"}), "An ant has 6 legs.").correct);
  EXPECT_TRUE(check_answer(chat("", {"Spell the word 'apple' backwards.", "elppa", "And what about 'river'?"}), "It is 'revir'.").correct);
  // Counting, words and facts.
  EXPECT_TRUE(check_answer(chat("", {"How many times does the letter 'p' appear in 'pepper'?"}), "3 times.").correct);
  EXPECT_TRUE(check_answer(chat("", {"How many letters are in the word 'banana'?"}), "Banana has 6 letters.").correct);
  EXPECT_TRUE(check_answer(chat("", {"Write the word 'apple' in capital letters."}), "Here: APPLE").correct);
  EXPECT_FALSE(check_answer(chat("", {"Write the word 'apple' in capital letters."}), "Here: Apple").correct);
  EXPECT_TRUE(check_answer(chat("", {"What is the capital of Japan?"}), "tokyo!").correct);
  // Personas.
  EXPECT_TRUE(check_answer(chat(kPirate, {"What is 2 plus 2?"}), "Arrr, 2 plus 2 be 4, matey!").persona);
  EXPECT_FALSE(check_answer(chat(kPirate, {"What is 2 plus 2?"}), "2 plus 2 is 4.").persona);
  EXPECT_EQ(check_answer(chat(kPirate, {"What is 2 plus 2?"}), "2 plus 2 is 4.").score(), 8);
  EXPECT_FALSE(check_answer(chat(persona_system_prompt(Persona::Brief), {"What is 2 plus 2?"}),
                            "Well, if you take two and add two more you get 4.").persona);
  EXPECT_TRUE(check_answer(chat(persona_system_prompt(Persona::Cheerful), {"What is 2 plus 2?"}), "It is 4!").persona);
  // Length and unknown questions.
  std::string rambling = "The answer is";
  for (int i = 0; i < 40; ++i) rambling += " very";
  EXPECT_FALSE(check_answer(chat("", {"What is 2 plus 2?"}), rambling + " much 4.").length_ok);
  EXPECT_FALSE(check_answer(chat("", {"Write me a poem."}), "Roses are red.").known);
  EXPECT_FALSE(check_answer(chat("", {"And doubled?"}), "4").known);
}

TEST(Teacher, WritesDeterministicHeldOutDataItsCheckerAccepts) {
  const fs::path dir = test::fresh_temp_path("teacher");
  SynthConfig c;
  c.seed = 7, c.sft_dialogues = 200, c.feedback_prompts = 50, c.eval_questions = 30, c.eval_instructions = 20, c.flaw_rate = 0.2;
  c.out_dir = (dir / "a").string();
  const SynthSummary s = synth_data(c);
  c.out_dir = (dir / "b").string();
  synth_data(c);
  for (const char* f : {"sft.jsonl", "feedback_prompts.jsonl", "mt_bench.jsonl", "alpaca_eval.jsonl"})
    EXPECT_EQ(read_file(dir / "a" / f), read_file(dir / "b" / f)) << f;
  EXPECT_EQ(s.sft, 200);
  int64_t flaws = 0;
  for (const auto& [_, n] : s.flaws) flaws += n;
  EXPECT_GT(flaws, 20);
  EXPECT_LT(flaws, 60);

  std::set<std::string> trained;
  int64_t clean_turns = 0, pirate = 0;
  for (const ordered_json& r : rows(dir / "a" / "sft.jsonl")) {
    const ordered_json& m = r["messages"];
    for (size_t i = 0; i < m.size(); ++i) {
      if (m[i]["role"] == "user") trained.insert(m[i]["content"].get<std::string>());
      if (m[i]["role"] != "assistant" || r.contains("flaw")) continue;
      ordered_json upto(m.begin(), m.begin() + long(i));
      const AnswerCheck a = check_answer(upto, m[i]["content"].get<std::string>());
      EXPECT_TRUE(a.known && a.correct && a.persona && a.length_ok) << m.dump();
      ++clean_turns;
      pirate += persona_of(m[0]["content"].get<std::string>()) == Persona::Pirate;
    }
  }
  EXPECT_GT(clean_turns, 150);
  EXPECT_GT(pirate, 30);
  for (const ordered_json& r : rows(dir / "a" / "feedback_prompts.jsonl")) trained.insert(r["messages"][1]["content"].get<std::string>());
  // Held out: no evaluation question was trained on, and each has a reference the checker agrees with.
  const auto questions = rows(dir / "a" / "mt_bench.jsonl");
  ASSERT_EQ(questions.size(), 30u);
  std::set<std::string> categories;
  for (const ordered_json& q : questions) {
    EXPECT_FALSE(trained.count(q["turns"][0].get<std::string>())) << q.dump();
    categories.insert(q["category"].get<std::string>());
    const ordered_json m = chat(q["system"], {q["turns"][0], q["reference"][0], q["turns"][1]});
    EXPECT_TRUE(check_answer(m, q["reference"][1].get<std::string>()).correct) << q.dump();
  }
  EXPECT_EQ(categories, (std::set<std::string>{"arithmetic", "counting", "facts", "words"}));
  for (const ordered_json& r : rows(dir / "a" / "alpaca_eval.jsonl")) EXPECT_FALSE(trained.count(r["instruction"].get<std::string>()));
  fs::remove_all(dir);
}

TEST(ChatFilter, TextRules) {
  const FilterRules r;
  EXPECT_TRUE(text_rule_violations("The capital is Paris. It is big!", r).empty());
  EXPECT_TRUE(text_rule_violations("12 plus 7 is 19. 'APPLE' is it.", r).empty());
  EXPECT_EQ(text_rule_violations("the capital is Paris.", r), std::vector<std::string>{"lowercase_start"});
  EXPECT_EQ(text_rule_violations("The capital is Paris. it is big.", r), std::vector<std::string>{"lowercase_start"});
  EXPECT_TRUE(text_rule_violations("It costs 3.50 dollars, i.e. cheap, vs. dear ones etc. and more.", r).empty());
  EXPECT_EQ(text_rule_violations("THE CAPITAL IS Paris.", r), std::vector<std::string>{"caps_run"});
  EXPECT_TRUE(text_rule_violations("THE CAPITAL is 42 Paris.", r).empty());  // two in a row only
  EXPECT_EQ(text_rule_violations("THE 2 CAPITAL IS Paris.", r), std::vector<std::string>{"caps_run"});  // numbers do not break a run
  EXPECT_EQ(text_rule_violations("  as an AI language model, I think so.", r), (std::vector<std::string>{"lowercase_start", "boilerplate"}));
  EXPECT_EQ(text_rule_violations("I don't have personal opinions, but yes.", r), std::vector<std::string>{"boilerplate"});
  EXPECT_TRUE(text_rule_violations("Yes. As an AI would say, no.", r).empty());  // only openings count
  FilterRules off = r;
  off.lowercase_start = false, off.min_caps_run = 0, off.openers = {"Sure!"};
  EXPECT_TRUE(text_rule_violations("the CAPITAL IS HERE.", off).empty());
  EXPECT_EQ(text_rule_violations("Sure! Here.", off), std::vector<std::string>{"boilerplate"});
}

TEST(ChatFilter, FindsTheTeachersFlawsAndDuplicates) {
  const fs::path dir = test::fresh_temp_path("filter");
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "in.jsonl");
    f << to_json_line({{"messages", chat("", {"What is 2 plus 2?", "2 plus 2 is 4."})}}) << "\n"
      << to_json_line({{"messages", chat("", {"What is 2 plus 2?", "2 plus 2 is 4."})}}) << "\n"              // exact
      << to_json_line({{"messages", chat("", {"  what is 2 plus 2 ", "It is 4."})}}) << "\n"                  // near
      << to_json_line({{"messages", chat("Be brief.", {"What is 2 plus 2?", "4."})}}) << "\n"                  // another system: kept
      << to_json_line({{"messages", chat("", {"What is 3 plus 3?", "As an AI language model, 6."})}}) << "\n"  // boilerplate
      << to_json_line({{"messages", chat("", {"Hi", "Hello.", "Bye", "bye."})}}) << "\n";                      // second answer mis-cased
  }
  FilterConfig c;
  c.in = (dir / "in.jsonl").string(), c.out = (dir / "out.jsonl").string(), c.rejected = (dir / "rej.jsonl").string();
  const FilterSummary s = filter_chats(c);
  EXPECT_EQ(s.rows, 6);
  EXPECT_EQ(s.kept, 2);
  EXPECT_EQ(s.by_rule.at("exact_duplicate"), 1);
  EXPECT_EQ(s.by_rule.at("near_duplicate"), 1);
  EXPECT_EQ(s.by_rule.at("boilerplate"), 1);
  EXPECT_EQ(s.by_rule.at("lowercase_start"), 1);
  EXPECT_EQ(rows(dir / "out.jsonl").size(), 2u);
  EXPECT_EQ(rows(dir / "rej.jsonl")[0]["rules"], ordered_json::array({"exact_duplicate"}));

  // The teacher's injected flaws: all found.
  SynthConfig sc;
  sc.out_dir = (dir / "synth").string(), sc.seed = 3, sc.sft_dialogues = 300, sc.flaw_rate = 0.3;
  synth_data(sc);
  c.in = (dir / "synth" / "sft.jsonl").string();
  const FilterSummary t = filter_chats(c);
  EXPECT_GT(t.labelled, 50);
  EXPECT_EQ(t.labelled_caught, t.labelled);
  // What else was dropped is a true duplicate of an earlier row.
  for (const ordered_json& r : rows(dir / "rej.jsonl"))
    if (!r.contains("flaw")) {
      EXPECT_TRUE(r["rules"] == ordered_json::array({"exact_duplicate"}) || r["rules"] == ordered_json::array({"near_duplicate"})) << r.dump();
    }
  c.report_only = true;
  EXPECT_EQ(filter_chats(c).kept, 300);
  fs::remove_all(dir);
}

TEST(RuleJudge, AnswersTheThreeJudgeTasks) {
  const ordered_json messages = chat(kPirate, {"What is 10 minus 1?"});
  const ordered_json fb = rule_judge({{"task", "feedback"}, {"messages", messages}, {"completions", {"Arr, 10 minus 1 be 9, matey!", "It is 9.", "11"}}});
  ASSERT_TRUE(fb.contains("scores")) << fb.dump();
  EXPECT_EQ(fb["scores"][0]["overall"], 10);
  EXPECT_EQ(fb["scores"][1]["overall"], 8);
  EXPECT_EQ(fb["scores"][2]["overall"], 3);
  EXPECT_EQ(rule_judge({{"task", "single"}, {"messages", messages}, {"answer", "Aye, 9"}})["rating"], 10);
  EXPECT_EQ(rule_judge({{"task", "pairwise"}, {"messages", messages}, {"answer_a", "9"}, {"answer_b", "Arr, 9"}})["winner"], "B");
  EXPECT_EQ(rule_judge({{"task", "pairwise"}, {"messages", messages}, {"answer_a", "9"}, {"answer_b", "9."}})["winner"], "tie");
  EXPECT_TRUE(rule_judge({{"task", "single"}, {"messages", chat("", {"Write a poem."})}, {"answer", "x"}}).contains("error"));
  EXPECT_TRUE(rule_judge({{"task", "grade"}, {"messages", messages}}).contains("error"));
  EXPECT_TRUE(rule_judge(ordered_json::array()).contains("error"));
}

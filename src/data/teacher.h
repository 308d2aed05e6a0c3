// The demo's checkable domain, standing in for Zephyr's GPT-3.5/GPT-4 teachers: a seeded teacher
// that asks questions whose answers a program can verify (arithmetic, counting, word
// manipulation, a small fact table, two-turn follow-ups such as "And doubled?") under
// system-prompt personas (the model card's pirate among them) and writes its ideal answers; and
// the checker that grades any model's answer to those questions (correctness, persona, length).
// The teacher writes and the checker reads the same question shapes, so they live together.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "io/json_file.h"

namespace zephyr {

enum class Persona { Plain, Pirate, Brief, Cheerful };
const std::string& persona_system_prompt(Persona p);
// The persona a system prompt asks for (Plain for any prompt the teacher does not write).
Persona persona_of(const std::string& system_prompt);

struct SynthConfig {
  std::string out_dir;
  uint64_t seed = 1;
  int sft_dialogues = 240;    // sft.jsonl: {"messages"} dialogues with the teacher's answers
  int feedback_prompts = 96;  // feedback_prompts.jsonl: {"prompt_id", "messages"} (system + user)
  int eval_questions = 40;    // mt_bench.jsonl: MT-Bench shape, two turns, held out from the above
  int eval_instructions = 32;  // alpaca_eval.jsonl: AlpacaEval shape {"instruction", "system"}
  double flaw_rate = 0.1;     // dialogues given a known flaw for `data filter` to find
};

struct SynthSummary {
  int64_t sft = 0, feedback = 0, eval_questions = 0, eval_instructions = 0;
  std::map<std::string, int64_t> flaws;  // injected, by kind
};

// Writes the four files (each atomically) into out_dir. Deterministic in the seed. Evaluation
// questions never repeat a training or feedback question. Flawed dialogues carry
// "flaw": "lowercase_start" | "caps_run" | "boilerplate" | "exact_duplicate" | "near_duplicate".
SynthSummary synth_data(const SynthConfig& config);

struct AnswerCheck {
  bool known = false;      // the last user turn is one of the teacher's questions
  bool correct = false;    // the answer states the expected result (for numbers: as its last number)
  bool persona = true;     // follows the system prompt's persona (always true without one)
  bool length_ok = true;   // at most 40 words
  std::string category;    // arithmetic | counting | words | facts
  std::string expected;
  int score() const { return 1 + (correct ? 5 : 0) + (persona ? 2 : 0) + (length_ok ? 2 : 0); }  // 1..10
};

// Grades `answer` as the reply to `messages` (system?, user, [assistant, user]...): the last user
// turn is solved, a follow-up from the turn before it. Unknown questions give known = false.
AnswerCheck check_answer(const ordered_json& messages, const std::string& answer);

}  // namespace zephyr

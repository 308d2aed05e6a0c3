#include "data/teacher.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "core/rng.h"

namespace zephyr {

namespace {

// Every fourth entry of each table only ever appears in evaluation questions, so the held-out
// set asks about words, countries and animals the trained models never saw answered.
const std::vector<std::string> kWords = {
    "apple",  "banana", "river",  "garden", "pencil", "window", "planet", "orange", "butter", "silver", "castle", "forest",
    "rocket", "candle", "yellow", "market", "doctor", "summer", "winter", "bridge", "cookie", "dragon", "guitar", "island",
    "jungle", "kitten", "lemon",  "mirror", "number", "ocean",  "pepper", "rabbit", "sunset", "tiger",  "violin", "wallet",
    "zebra",  "anchor", "basket", "cloud",  "desert", "engine", "feather", "glass", "honey",  "insect", "jacket", "ladder",
    "meadow", "needle", "parrot", "puzzle", "shadow", "tomato", "turtle", "valley", "wizard", "marble", "copper", "pirate"};
const std::vector<std::pair<std::string, std::string>> kCapitals = {
    {"France", "Paris"},   {"Germany", "Berlin"}, {"Italy", "Rome"},        {"Spain", "Madrid"},   {"Japan", "Tokyo"},
    {"Canada", "Ottawa"},  {"Egypt", "Cairo"},    {"Kenya", "Nairobi"},     {"Norway", "Oslo"},    {"Peru", "Lima"},
    {"Greece", "Athens"},  {"Portugal", "Lisbon"}, {"Ireland", "Dublin"},   {"Poland", "Warsaw"},  {"Austria", "Vienna"},
    {"Sweden", "Stockholm"}, {"Finland", "Helsinki"}, {"Russia", "Moscow"}, {"China", "Beijing"},  {"Thailand", "Bangkok"},
    {"Cuba", "Havana"},    {"Chile", "Santiago"}, {"Hungary", "Budapest"},  {"Belgium", "Brussels"}};
const std::vector<std::pair<std::string, int>> kLegs = {
    {"spider", 8}, {"ant", 6},  {"dog", 4},   {"robin", 2},   {"horse", 4}, {"cat", 4},     {"chicken", 2}, {"beetle", 6},
    {"crab", 10},  {"cow", 4},  {"duck", 2},  {"snake", 0},   {"lobster", 10}, {"goat", 4}, {"bee", 6},      {"ostrich", 2}};

template <class T>
std::vector<T> split_pool(const std::vector<T>& all, bool eval) {
  std::vector<T> out;
  for (size_t i = 0; i < all.size(); ++i)
    if ((i % 4 == 3) == eval) out.push_back(all[i]);
  return out;
}

const std::array<std::string, 4> kSystemPrompts = {
    "You are a helpful assistant.",
    "You are a friendly chatbot who always responds in the style of a pirate",
    "You are a terse assistant. Answer in at most eight words.",
    "You are a cheerful assistant who ends every answer with an exclamation mark."};

enum class Kind { Add, Sub, Mul, Letters, Occurrences, Reverse, Upper, Capital, Legs };

const char* category_of(Kind k) {
  switch (k) {
    case Kind::Add: case Kind::Sub: case Kind::Mul: return "arithmetic";
    case Kind::Letters: case Kind::Occurrences: return "counting";
    case Kind::Reverse: case Kind::Upper: return "words";
    case Kind::Capital: case Kind::Legs: return "facts";
  }
  return "";
}

// "A spider" "has" "8" " legs": the parts every persona's wording is built from.
struct Statement {
  std::string subject, verb, value, tail;
};

struct Solved {
  Kind kind = Kind::Add;
  std::string word, letter, place;  // the question's argument (for "And what about ...?")
  bool numeric = false;
  long number = 0;
  std::string text;  // the expected result when not numeric
  Statement statement;
  std::string expected() const { return numeric ? std::to_string(number) : text; }
};

std::string article(const std::string& noun) { return std::string("aeiou").find(noun[0]) != std::string::npos ? "an" : "a"; }
std::string cap_first(std::string s) {
  if (!s.empty()) s[0] = char(std::toupper((unsigned char)s[0]));
  return s;
}
std::string lower_first(std::string s) {
  if (s.size() > 1 && std::isupper((unsigned char)s[0]) && std::islower((unsigned char)s[1])) s[0] = char(std::tolower((unsigned char)s[0]));
  return s;
}

Solved solve_word_task(Kind kind, const std::string& word, const std::string& letter) {
  Solved s;
  s.kind = kind, s.word = word, s.letter = letter;
  if (kind == Kind::Letters) {
    s.numeric = true, s.number = long(word.size());
    s.statement = {"The word '" + word + "'", "has", std::to_string(s.number), " letters"};
  } else if (kind == Kind::Occurrences) {
    s.numeric = true, s.number = long(std::count(word.begin(), word.end(), letter[0]));
    s.statement = {"The letter '" + letter + "'", "appears", std::to_string(s.number), std::string(s.number == 1 ? " time" : " times") + " in '" + word + "'"};
  } else if (kind == Kind::Reverse) {
    s.text = std::string(word.rbegin(), word.rend());
    s.statement = {"The word '" + word + "' spelled backwards", "is", "'" + s.text + "'", ""};
  } else {
    s.text = word;
    for (char& c : s.text) c = char(std::toupper((unsigned char)c));
    s.statement = {"The word '" + word + "' in capital letters", "is", "'" + s.text + "'", ""};
  }
  return s;
}

std::optional<Solved> solve_fact(Kind kind, const std::string& place) {
  Solved s;
  s.kind = kind, s.place = place;
  if (kind == Kind::Capital) {
    for (const auto& [country, city] : kCapitals)
      if (country == place) {
        s.text = city;
        s.statement = {"The capital of " + country, "is", city, ""};
        return s;
      }
  } else {
    for (const auto& [animal, legs] : kLegs)
      if (animal == place) {
        s.numeric = true, s.number = legs;
        s.statement = {cap_first(article(animal)) + " " + animal, "has", std::to_string(legs), legs == 1 ? " leg" : " legs"};
        return s;
      }
  }
  return std::nullopt;
}

Solved solve_arithmetic(Kind kind, long a, long b) {
  Solved s;
  s.kind = kind, s.numeric = true;
  const char* op = kind == Kind::Add ? "plus" : kind == Kind::Sub ? "minus" : "times";
  s.number = kind == Kind::Add ? a + b : kind == Kind::Sub ? a - b : a * b;
  s.statement = {std::to_string(a) + " " + op + " " + std::to_string(b), "is", std::to_string(s.number), ""};
  return s;
}

std::string question_of(const Solved& s, long a, long b) {
  switch (s.kind) {
    case Kind::Add: return "What is " + std::to_string(a) + " plus " + std::to_string(b) + "?";
    case Kind::Sub: return "What is " + std::to_string(a) + " minus " + std::to_string(b) + "?";
    case Kind::Mul: return "What is " + std::to_string(a) + " times " + std::to_string(b) + "?";
    case Kind::Letters: return "How many letters are in the word '" + s.word + "'?";
    case Kind::Occurrences: return "How many times does the letter '" + s.letter + "' appear in '" + s.word + "'?";
    case Kind::Reverse: return "Spell the word '" + s.word + "' backwards.";
    case Kind::Upper: return "Write the word '" + s.word + "' in capital letters.";
    case Kind::Capital: return "What is the capital of " + s.place + "?";
    case Kind::Legs: return "How many legs does " + article(s.place) + " " + s.place + " have?";
  }
  return "";
}

std::string collapse_spaces(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (std::isspace((unsigned char)c)) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Solves one user turn; `previous` is the solved turn before it, for follow-ups.
std::optional<Solved> solve(const std::string& question, const std::optional<Solved>& previous) {
  static const std::regex arith(R"(What is (\d{1,6}) (plus|minus|times) (\d{1,6})\?)");
  static const std::regex letters(R"(How many letters are in the word '([a-z]+)'\?)");
  static const std::regex occurrences(R"(How many times does the letter '([a-z])' appear in '([a-z]+)'\?)");
  static const std::regex reverse(R"(Spell the word '([a-z]+)' backwards\.)");
  static const std::regex upper(R"(Write the word '([a-z]+)' in capital letters\.)");
  static const std::regex capital(R"(What is the capital of ([A-Za-z ]+)\?)");
  static const std::regex legs(R"(How many legs does an? ([a-z]+) have\?)");
  static const std::regex doubled(R"(And doubled\?)");
  static const std::regex plus_n(R"(And what is that plus (\d{1,6})\?)");
  static const std::regex about(R"(And what about (?:an? |the )?'?([A-Za-z ]+?)'?\?)");
  const std::string q = collapse_spaces(question);
  if (q.size() > 200) return std::nullopt;
  std::smatch m;
  if (std::regex_match(q, m, arith)) {
    const Kind k = m[2] == "plus" ? Kind::Add : m[2] == "minus" ? Kind::Sub : Kind::Mul;
    return solve_arithmetic(k, std::stol(m[1]), std::stol(m[3]));
  }
  if (std::regex_match(q, m, letters)) return solve_word_task(Kind::Letters, m[1], "");
  if (std::regex_match(q, m, occurrences)) return solve_word_task(Kind::Occurrences, m[2], m[1]);
  if (std::regex_match(q, m, reverse)) return solve_word_task(Kind::Reverse, m[1], "");
  if (std::regex_match(q, m, upper)) return solve_word_task(Kind::Upper, m[1], "");
  if (std::regex_match(q, m, capital)) return solve_fact(Kind::Capital, m[1]);
  if (std::regex_match(q, m, legs)) return solve_fact(Kind::Legs, m[1]);
  if (!previous) return std::nullopt;
  if (previous->numeric && (std::regex_match(q, m, doubled) || std::regex_match(q, m, plus_n))) {
    Solved s = *previous;
    const std::string prev = std::to_string(previous->number);
    if (m.size() == 1) {
      s.number = 2 * previous->number;
      s.statement = {"Twice " + prev, "is", std::to_string(s.number), ""};
    } else {
      s.number = previous->number + std::stol(m[1]);
      s.statement = {prev + " plus " + std::string(m[1]), "is", std::to_string(s.number), ""};
    }
    return s;
  }
  if (std::regex_match(q, m, about)) {
    const std::string arg = m[1];
    switch (previous->kind) {
      case Kind::Letters: case Kind::Occurrences: case Kind::Reverse: case Kind::Upper:
        if (std::all_of(arg.begin(), arg.end(), [](char c) { return c >= 'a' && c <= 'z'; }))
          return solve_word_task(previous->kind, arg, previous->letter);
        return std::nullopt;
      case Kind::Capital: case Kind::Legs: return solve_fact(previous->kind, arg);
      default: return std::nullopt;
    }
  }
  return std::nullopt;
}

// The teacher's answer in a persona's words.
std::string styled(const Statement& s, Persona p) {
  const std::string rest = s.value + s.tail;
  switch (p) {
    case Persona::Pirate: return "Arr, " + lower_first(s.subject) + " " + (s.verb == "is" ? "be" : s.verb) + " " + rest + ", matey!";
    case Persona::Brief: return "It " + s.verb + " " + rest + ".";
    case Persona::Cheerful: return "Happy to help! " + s.subject + " " + s.verb + " " + rest + "!";
    case Persona::Plain: break;
  }
  return s.subject + " " + s.verb + " " + rest + ".";
}

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (std::isalnum((unsigned char)c) || c == '-') {
      cur += c;
    } else if (!cur.empty()) {
      out.push_back(cur), cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower((unsigned char)c));
  return s;
}

// The last integer written in the text (digits, optionally after a minus sign).
std::optional<long> last_number(const std::string& text) {
  std::optional<long> n;
  for (size_t i = 0; i < text.size();) {
    if (!std::isdigit((unsigned char)text[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && std::isdigit((unsigned char)text[j])) ++j;
    if (j - i <= 12) n = std::stol(text.substr(i, j - i)) * (i > 0 && text[i - 1] == '-' ? -1 : 1);
    // "3.5": a decimal is not the integer before its point
    if (j + 1 < text.size() && text[j] == '.' && std::isdigit((unsigned char)text[j + 1])) {
      while (++j < text.size() && std::isdigit((unsigned char)text[j])) {}
      n.reset();
    }
    i = j;
  }
  return n;
}

bool follows_persona(Persona p, const std::string& answer) {
  const std::vector<std::string> words = words_of(answer);
  switch (p) {
    case Persona::Plain: return true;
    case Persona::Brief: return !words.empty() && words.size() <= 8;
    case Persona::Cheerful: {
      const std::string t = collapse_spaces(answer);
      return !t.empty() && t.back() == '!';
    }
    case Persona::Pirate:
      for (const std::string& w : words) {
        const std::string l = lower(w);
        const bool arr = l.size() >= 3 && l[0] == 'a' && l.find_first_not_of("ar") == std::string::npos && l.find("rr") != std::string::npos;
        if (arr || l == "matey" || l == "ahoy" || l == "aye" || l == "ye" || l == "hearty" || l == "avast" || l == "landlubber") return true;
      }
      return false;
  }
  return false;
}

struct Dialogue {
  ordered_json messages;
  std::string category;
  std::vector<std::string> user_turns, expected;
};

class Teacher {
 public:
  Teacher(uint64_t seed, bool eval) : rng_(seed), words_(split_pool(kWords, eval)), capitals_(split_pool(kCapitals, eval)), legs_(split_pool(kLegs, eval)) {}

  long uniform(long lo, long hi) { return lo + long(rng_.next() % uint64_t(hi - lo + 1)); }
  template <class T>
  const T& pick(const std::vector<T>& v) { return v[size_t(rng_.next() % v.size())]; }

  // The dSFT dialogues never show the cheerful persona; feedback prompts and evaluation ask for it
  // often. Only the judge's preferences can teach it, as UltraFeedback's prompts reach beyond
  // UltraChat's, which is what dDPO adds to dSFT.
  Persona persona(bool sft) {
    const double u = rng_.uniform();
    if (sft) return u < 0.45 ? Persona::Plain : u < 0.8 ? Persona::Pirate : Persona::Brief;
    return u < 0.25 ? Persona::Plain : u < 0.5 ? Persona::Pirate : u < 0.65 ? Persona::Brief : Persona::Cheerful;
  }

  // A first question: its text and solution.
  std::pair<std::string, Solved> question(Kind k) {
    long a = 0, b = 0;
    Solved s;
    switch (k) {
      case Kind::Add: a = uniform(2, 60), b = uniform(2, 40), s = solve_arithmetic(k, a, b); break;
      case Kind::Sub: a = uniform(10, 90), b = uniform(1, a), s = solve_arithmetic(k, a, b); break;
      case Kind::Mul: a = uniform(2, 12), b = uniform(2, 12), s = solve_arithmetic(k, a, b); break;
      case Kind::Letters: case Kind::Reverse: case Kind::Upper: s = solve_word_task(k, pick(words_), ""); break;
      case Kind::Occurrences: {
        const std::string w = pick(words_);
        s = solve_word_task(k, w, std::string(1, w[size_t(rng_.next() % w.size())]));
        break;
      }
      case Kind::Capital: s = *solve_fact(k, pick(capitals_).first); break;
      case Kind::Legs: s = *solve_fact(k, pick(legs_).first); break;
    }
    return {question_of(s, a, b), s};
  }

  // The follow-up turn: arithmetic doubles or adds; the others ask the same about a new argument.
  std::pair<std::string, Solved> follow_up(const Solved& first) {
    std::string q;
    if (category_of(first.kind) == std::string("arithmetic")) {
      q = rng_.uniform() < 0.5 ? "And doubled?" : "And what is that plus " + std::to_string(uniform(2, 20)) + "?";
    } else if (first.kind == Kind::Capital) {
      q = "And what about " + pick(capitals_).first + "?";
    } else if (first.kind == Kind::Legs) {
      const std::string& animal = pick(legs_).first;
      q = "And what about " + article(animal) + " " + animal + "?";
    } else {
      q = "And what about '" + pick(words_) + "'?";
    }
    return {q, *solve(q, first)};
  }

  Kind kind() { return Kind(rng_.next() % 9); }

  Dialogue dialogue(Persona p, bool two_turns, Kind k) {
    Dialogue d;
    d.messages = ordered_json::array({{{"role", "system"}, {"content", persona_system_prompt(p)}}});
    auto [q1, s1] = question(k);
    d.category = category_of(k);
    d.messages.push_back({{"role", "user"}, {"content", q1}});
    d.messages.push_back({{"role", "assistant"}, {"content", styled(s1.statement, p)}});
    d.user_turns.push_back(q1), d.expected.push_back(s1.expected());
    if (two_turns) {
      auto [q2, s2] = follow_up(s1);
      d.messages.push_back({{"role", "user"}, {"content", q2}});
      d.messages.push_back({{"role", "assistant"}, {"content", styled(s2.statement, p)}});
      d.user_turns.push_back(q2), d.expected.push_back(s2.expected());
    }
    return d;
  }

  Rng& rng() { return rng_; }

 private:
  Rng rng_;
  std::vector<std::string> words_;
  std::vector<std::pair<std::string, std::string>> capitals_;
  std::vector<std::pair<std::string, int>> legs_;
};

// The known flaws Zephyr-alpha's users saw, put into the teacher's answers for the filter to find.
void inject_flaw(ordered_json& row, const std::string& flaw, const std::vector<ordered_json>& earlier, Rng& rng) {
  ordered_json& messages = row["messages"];
  auto each_answer = [&](auto fn) {
    for (auto& m : messages)
      if (m["role"] == "assistant") m["content"] = fn(m["content"].get<std::string>());
  };
  if (flaw == "lowercase_start") {
    each_answer([](const std::string& a) { return "sure, " + lower_first(a); });
  } else if (flaw == "caps_run") {
    each_answer([](std::string a) {
      for (char& c : a) c = char(std::toupper((unsigned char)c));
      return "OKAY, HERE IT IS: " + a;
    });
  } else if (flaw == "boilerplate") {
    const char* openers[] = {"As an AI language model, I can tell you that ", "I don't have personal experiences, but ",
                             "As an AI, I must say that "};
    const std::string opener = openers[rng.next() % 3];
    each_answer([&](const std::string& a) { return opener + lower_first(a); });
  } else {
    row = earlier[size_t(rng.next() % earlier.size())];
    if (flaw == "near_duplicate")  // the same prompt re-typed: case, spacing and punctuation differ
      for (auto& m : row["messages"])
        if (m["role"] == "user") {
          std::string q = lower(m["content"].get<std::string>());
          if (!q.empty() && (q.back() == '?' || q.back() == '.')) q.pop_back();
          m["content"] = "  " + q + " ";
          break;
        }
  }
  row["flaw"] = flaw;
}

std::string jsonl(const std::vector<ordered_json>& rows) {
  std::string out;
  for (const auto& r : rows) out += to_json_line(r) + "\n";
  return out;
}

}  // namespace

const std::string& persona_system_prompt(Persona p) { return kSystemPrompts[size_t(p)]; }

Persona persona_of(const std::string& system_prompt) {
  const std::string s = collapse_spaces(system_prompt);
  for (size_t i = 1; i < kSystemPrompts.size(); ++i)
    if (s == kSystemPrompts[i]) return Persona(i);
  if (lower(s).find("pirate") != std::string::npos) return Persona::Pirate;
  return Persona::Plain;
}

SynthSummary synth_data(const SynthConfig& c) {
  if (c.sft_dialogues < 1 || c.feedback_prompts < 1 || c.eval_questions < 1 || c.eval_instructions < 1)
    fail("data synth", "every count must be at least 1");
  if (c.flaw_rate < 0 || c.flaw_rate > 0.5) fail("data synth: --flaw-rate", "must be in [0, 0.5]");
  SynthSummary sum;
  Teacher train(c.seed, false);
  std::set<std::string> seen;  // user turns of training and feedback prompts
  std::vector<ordered_json> sft;
  const char* flaws[] = {"lowercase_start", "caps_run", "boilerplate", "exact_duplicate", "near_duplicate"};
  for (int i = 0; i < c.sft_dialogues; ++i) {
    const Persona p = train.persona(true);
    const Dialogue d = train.dialogue(p, train.rng().uniform() < 0.25, train.kind());
    ordered_json row = {{"messages", d.messages}};
    for (const auto& q : d.user_turns) seen.insert(q);
    if (!sft.empty() && train.rng().uniform() < c.flaw_rate) {
      std::vector<ordered_json> clean;
      for (const auto& r : sft)
        if (!r.contains("flaw")) clean.push_back(r);
      const std::string flaw = flaws[train.rng().next() % 5];
      inject_flaw(row, flaw, clean.empty() ? sft : clean, train.rng());
      ++sum.flaws[flaw];
    }
    sft.push_back(row);
  }
  std::vector<ordered_json> feedback;
  for (int i = 0; i < c.feedback_prompts; ++i) {
    const Persona p = train.persona(false);
    const Dialogue d = train.dialogue(p, false, train.kind());
    seen.insert(d.user_turns[0]);
    char id[32];
    std::snprintf(id, sizeof id, "fb-%04d", i + 1);
    feedback.push_back({{"prompt_id", id}, {"category", d.category}, {"messages", ordered_json::array({d.messages[0], d.messages[1]})}});
  }
  // Held out: words, countries and animals never asked about above, no training question, and no
  // evaluation dialogue twice.
  Teacher held_out(c.seed ^ 0x5eed0e7a1ull, true);
  std::set<std::string> asked;
  std::vector<ordered_json> questions, instructions;
  const Kind order[] = {Kind::Add, Kind::Letters, Kind::Reverse, Kind::Capital, Kind::Mul, Kind::Occurrences, Kind::Upper, Kind::Legs, Kind::Sub};
  for (int i = 0, tries = 0; int(questions.size()) < c.eval_questions && tries < 100000; ++tries) {
    const Persona p = held_out.persona(false);
    const Dialogue d = held_out.dialogue(p, true, order[i % 9]);
    if (seen.count(d.user_turns[0]) || !asked.insert(d.messages.dump()).second) continue;
    char id[32];
    std::snprintf(id, sizeof id, "smol-%03d", ++i);
    questions.push_back({{"question_id", id}, {"category", d.category}, {"system", d.messages[0]["content"]},
                         {"turns", d.user_turns}, {"reference", d.expected}});
  }
  for (int i = 0, tries = 0; int(instructions.size()) < c.eval_instructions && tries < 100000; ++tries) {
    const Dialogue d = held_out.dialogue(Persona::Plain, false, order[i % 9]);
    if (seen.count(d.user_turns[0]) || !asked.insert(d.user_turns[0]).second) continue;
    ++i;
    instructions.push_back({{"instruction", d.user_turns[0]}, {"dataset", "zephyr-smol"}, {"category", d.category}});
  }
  if (int(questions.size()) < c.eval_questions || int(instructions.size()) < c.eval_instructions)
    fail("data synth", "cannot find that many held-out questions; ask for fewer");
  std::filesystem::create_directories(c.out_dir);
  const std::filesystem::path dir(c.out_dir);
  write_file_atomic(dir / "sft.jsonl", jsonl(sft));
  write_file_atomic(dir / "feedback_prompts.jsonl", jsonl(feedback));
  write_file_atomic(dir / "mt_bench.jsonl", jsonl(questions));
  write_file_atomic(dir / "alpaca_eval.jsonl", jsonl(instructions));
  sum.sft = int64_t(sft.size()), sum.feedback = int64_t(feedback.size());
  sum.eval_questions = int64_t(questions.size()), sum.eval_instructions = int64_t(instructions.size());
  return sum;
}

AnswerCheck check_answer(const ordered_json& messages, const std::string& answer) {
  AnswerCheck r;
  if (!messages.is_array()) return r;
  std::string system;
  std::optional<Solved> prev, cur;
  for (const auto& m : messages) {
    if (!m.is_object() || !m.contains("content") || !m["content"].is_string()) continue;
    const std::string role = m.value("role", ""), text = m["content"].get<std::string>();
    if (role == "system") system = text;
    if (role == "user") prev = cur, cur = solve(text, prev);
  }
  if (!cur) return r;
  r.known = true;
  r.category = category_of(cur->kind);
  r.expected = cur->expected();
  if (cur->numeric) {
    const std::optional<long> n = last_number(answer);
    r.correct = n && *n == cur->number;
  } else {
    const std::vector<std::string> words = words_of(answer), want = words_of(cur->text);
    const bool exact_case = cur->kind == Kind::Upper;
    for (size_t i = 0; i + want.size() <= words.size() && !r.correct; ++i) {
      bool all = true;
      for (size_t j = 0; j < want.size() && all; ++j)
        all = exact_case ? words[i + j] == want[j] : lower(words[i + j]) == lower(want[j]);
      r.correct = all;
    }
  }
  r.persona = follows_persona(persona_of(system), answer);
  r.length_ok = words_of(answer).size() <= 40;
  return r;
}

}  // namespace zephyr

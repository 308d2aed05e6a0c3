#include "recipe/recipe.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>

#include "core/error.h"
#include "data/chat_filter.h"
#include "eval/evaluation.h"
#include "feedback/feedback.h"
#include "io/yaml_file.h"
#include "model/gguf_model.h"
#include "model/init.h"
#include "recipe/report.h"
#include "train/stage.h"
#include "train/trainer.h"

namespace zephyr {

namespace fs = std::filesystem;

namespace {

template <class T>
T as(const YAML::Node& n, const std::string& where) {
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    fail(where, "has the wrong type");
  }
}

std::vector<std::pair<std::string, std::string>> overrides_of(const YAML::Node& n, const std::string& where) {
  if (!n.IsMap()) fail(where, "expected a mapping of recipe keys to values");
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& kv : n) out.emplace_back(kv.first.as<std::string>(), as<std::string>(kv.second, where + "." + kv.first.as<std::string>()));
  return out;
}

void check_keys(const YAML::Node& n, const std::string& where, std::initializer_list<const char*> keys) {
  if (!n.IsMap()) fail(where, "expected a mapping");
  for (const auto& kv : n) {
    const std::string k = kv.first.as<std::string>();
    if (std::none_of(keys.begin(), keys.end(), [&](const char* a) { return k == a; })) {
      std::string list;
      for (const char* a : keys) list += (list.empty() ? "" : ", ") + std::string(a);
      fail(where + ":" + std::to_string(kv.first.Mark().line + 1) + ": " + k, "unknown key (expected one of " + list + ")");
    }
  }
}

// Applies one mapping of recipe.yaml (the top level, or its quick block) onto r.
void apply(Recipe& r, const YAML::Node& root, const std::string& file) {
  check_keys(root, file, {"base", "fallback_base", "data", "filter", "sft", "sft_overrides", "dpo", "dpo_overrides", "feedback", "judge", "eval",
                          "seed", "showcase", "quick"});
  const fs::path dir(r.dir);
  if (root["base"]) r.base = as<std::string>(root["base"], file + ": base");
  if (const YAML::Node f = root["fallback_base"]) {
    const std::string w = file + ": fallback_base";
    check_keys(f, w, {"tokenizer", "hidden", "layers", "heads", "kv_heads", "intermediate"});
    Recipe::FallbackBase& b = r.fallback_base;
    if (!f["tokenizer"]) fail(w, "needs \"tokenizer\" (a tokenizer.json or a directory with one, in the recipe directory)");
    b.tokenizer = (dir / as<std::string>(f["tokenizer"], w + ".tokenizer")).string();
    for (auto [key, v] : {std::pair{"hidden", &b.hidden}, std::pair{"layers", &b.layers}, std::pair{"heads", &b.heads},
                          std::pair{"kv_heads", &b.kv_heads}, std::pair{"intermediate", &b.intermediate}})
      if (f[key]) *v = as<int64_t>(f[key], w + "." + key);
  }
  if (const YAML::Node d = root["data"]) {
    check_keys(d, file + ": data", {"dir", "synth"});
    if (d["dir"]) r.data_dir = as<std::string>(d["dir"], file + ": data.dir");
    if (const YAML::Node s = d["synth"]) {
      const std::string w = file + ": data.synth";
      check_keys(s, w, {"seed", "sft", "feedback", "eval_questions", "eval_instructions", "flaw_rate"});
      if (s["seed"]) r.synth.seed = as<uint64_t>(s["seed"], w + ".seed");
      if (s["sft"]) r.synth.sft_dialogues = as<int>(s["sft"], w + ".sft");
      if (s["feedback"]) r.synth.feedback_prompts = as<int>(s["feedback"], w + ".feedback");
      if (s["eval_questions"]) r.synth.eval_questions = as<int>(s["eval_questions"], w + ".eval_questions");
      if (s["eval_instructions"]) r.synth.eval_instructions = as<int>(s["eval_instructions"], w + ".eval_instructions");
      if (s["flaw_rate"]) r.synth.flaw_rate = as<double>(s["flaw_rate"], w + ".flaw_rate");
    }
  }
  if (root["filter"]) r.filter_rules = (dir / as<std::string>(root["filter"], file + ": filter")).string();
  if (root["sft"]) r.sft_config = (dir / as<std::string>(root["sft"], file + ": sft")).string();
  if (root["dpo"]) r.dpo_config = (dir / as<std::string>(root["dpo"], file + ": dpo")).string();
  for (auto [key, target] : {std::pair{"sft_overrides", &r.sft_overrides}, std::pair{"dpo_overrides", &r.dpo_overrides}})
    if (root[key])
      for (auto& kv : overrides_of(root[key], file + ": " + key)) target->push_back(kv);
  if (const YAML::Node f = root["feedback"]) {
    const std::string w = file + ": feedback";
    check_keys(f, w, {"generators", "max_tokens", "strategy"});
    if (f["max_tokens"]) r.feedback_max_tokens = as<int64_t>(f["max_tokens"], w + ".max_tokens");
    if (f["strategy"]) r.binarize_strategy = as<std::string>(f["strategy"], w + ".strategy");
    if (const YAML::Node gens = f["generators"]) {
      if (!gens.IsSequence() || gens.size() == 0) fail(w + ".generators", "expected a list of {model, temperature, top_p, completions}");
      r.generators.clear();
      for (size_t i = 0; i < gens.size(); ++i) {
        const std::string wi = w + ".generators[" + std::to_string(i) + "]";
        check_keys(gens[i], wi, {"model", "temperature", "top_p", "completions"});
        if (!gens[i]["model"]) fail(wi, "needs \"model\" (base, dsft, dsft_early, or a model SPEC)");
        GeneratorEntry g;
        g.model = as<std::string>(gens[i]["model"], wi + ".model");
        if (gens[i]["temperature"]) g.temperature = as<double>(gens[i]["temperature"], wi + ".temperature");
        if (gens[i]["top_p"]) g.top_p = as<double>(gens[i]["top_p"], wi + ".top_p");
        if (gens[i]["completions"]) g.completions = as<int>(gens[i]["completions"], wi + ".completions");
        r.generators.push_back(g);
      }
    }
  }
  if (root["judge"]) r.judge = as<std::string>(root["judge"], file + ": judge");
  if (const YAML::Node e = root["eval"]) {
    const std::string w = file + ": eval";
    check_keys(e, w, {"max_tokens", "temperature", "concurrency"});
    if (e["max_tokens"]) r.eval_max_tokens = as<int64_t>(e["max_tokens"], w + ".max_tokens");
    if (e["temperature"]) r.eval_temperature = as<double>(e["temperature"], w + ".temperature");
    if (e["concurrency"]) r.concurrency = as<int>(e["concurrency"], w + ".concurrency");
  }
  if (root["seed"]) r.seed = as<uint64_t>(root["seed"], file + ": seed");
  if (const YAML::Node s = root["showcase"]) {
    check_keys(s, file + ": showcase", {"system", "prompt"});
    if (s["system"]) r.showcase_system = as<std::string>(s["system"], file + ": showcase.system");
    if (s["prompt"]) r.showcase_prompt = as<std::string>(s["prompt"], file + ": showcase.prompt");
  }
}

// The zephyr-rule-judge program built beside this executable.
std::string rule_judge_path() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  const fs::path judge = self.parent_path() / "zephyr-rule-judge";
  if (ec || ::access(judge.c_str(), X_OK) != 0)
    fail("judge: rules", "zephyr-rule-judge is not beside " + self.string() + " (build it: cmake --build build)");
  return judge.string();
}

class Stages {
 public:
  Stages(fs::path out, int total) : marks_(std::move(out) / ".stages"), total_(total) { fs::create_directories(marks_); }

  // Runs fn unless an earlier run finished the stage; fn returns the stage's one-line note, kept
  // beside the mark for the report.
  void run(const std::string& name, const std::string& what, const std::function<std::string()>& fn) {
    ++index_;
    names_.push_back(name);
    const fs::path mark = marks_ / name;
    if (fs::exists(mark)) {
      std::fprintf(stderr, "[%d/%d] %s: complete in an earlier run, skipped\n", index_, total_, name.c_str());
      return;
    }
    std::fprintf(stderr, "[%d/%d] %s: %s\n", index_, total_, name.c_str(), what.c_str());
    const auto t0 = std::chrono::steady_clock::now();
    const std::string note = fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    write_file_atomic(mark, note + "\n");
    std::fprintf(stderr, "[%d/%d] %s: done in %.1f s%s%s\n", index_, total_, name.c_str(), s, note.empty() ? "" : " — ", note.c_str());
  }

  // "stage: note" for each stage run so far (now or earlier) that left a note, in run order.
  std::vector<std::string> notes() const {
    std::vector<std::string> out;
    for (const std::string& n : names_) {
      const fs::path p = marks_ / n;
      if (!fs::exists(p)) continue;
      std::string t = read_file(p);
      while (!t.empty() && t.back() == '\n') t.pop_back();
      if (!t.empty()) out.push_back(n + ": " + t);
    }
    return out;
  }

 private:
  fs::path marks_;
  std::vector<std::string> names_;
  int total_, index_ = 0;
};

// The note goes into the report, which must not change with the machine's speed: no seconds.
std::string count_line(const char* what, const FeedbackSummary& s) {
  return std::to_string(s.done + s.skipped) + " " + what + " (" + std::to_string(s.failed) + " failed)";
}

}  // namespace

Recipe Recipe::load(const std::string& dir, bool quick) {
  Recipe r;
  r.dir = dir;
  const std::string file = (fs::path(dir) / "recipe.yaml").string();
  if (!fs::exists(file)) fail(dir, "not a recipe directory (no recipe.yaml)");
  const YAML::Node root = load_yaml_file(file);
  reading_yaml(file, [&] {
    apply(r, root, file);
    if (quick && root["quick"]) apply(r, root["quick"], file + ": quick");
  });
  if (r.base.empty()) fail(file + ": base", "is required (a GGUF file or an HF model directory)");
  if (r.sft_config.empty() || r.dpo_config.empty()) fail(file, "needs \"sft\" and \"dpo\" (TrainConfig YAML files in the recipe directory)");
  if (r.generators.empty()) fail(file + ": feedback.generators", "is required (the models that answer the feedback prompts)");
  if (r.binarize_strategy != "random" && r.binarize_strategy != "worst") fail(file + ": feedback.strategy", "must be random or worst");
  return r;
}

std::string run_recipe(const RecipeOptions& o) {
  Recipe r = Recipe::load(o.dir, o.quick);
  if (!o.base.empty()) r.base = o.base;
  if (!o.data.empty()) r.data_dir = o.data;
  if (!o.judge.empty()) r.judge = o.judge;
  const fs::path out(o.out);
  fs::create_directories(out);
  std::fprintf(stderr, "recipe %s%s -> %s (base %s, data %s)\n", o.dir.c_str(), o.quick ? " --quick" : "", o.out.c_str(), r.base.c_str(),
               r.data_dir.empty() ? "from the teacher" : r.data_dir.c_str());
  const std::string judge_spec = r.judge == "rules" ? "exec:" + rule_judge_path() : r.judge;
  const ModelSpec judge = parse_model_spec(judge_spec);
  Stages stages(out, 14);

  // 1. The base model as an HF directory (sft and dpo start from one; transformers loads it).
  fs::path base = r.base;
  const bool missing = !fs::exists(base), gguf = fs::is_regular_file(base), made = gguf || missing;
  if (missing && r.fallback_base.tokenizer.empty()) fail(r.base, "the base model does not exist (run `make models`, or give --base)");
  const std::string how = missing ? r.base + " is missing: a tiny random model with " + r.fallback_base.tokenizer + " (fallback_base) instead"
                          : gguf  ? "export-hf of " + r.base
                                  : "the HF directory " + r.base + " as it is";
  stages.run("base", how, [&]() -> std::string {
    if (!made) return "";
    const fs::path tmp = out / "base.tmp";
    fs::remove_all(tmp);
    if (gguf) {
      export_hf(base, tmp, DType::F32);
    } else {
      const Recipe::FallbackBase& f = r.fallback_base;
      InitOptions io;
      io.config.architecture = "LlamaForCausalLM";
      io.config.hidden_size = f.hidden, io.config.num_hidden_layers = f.layers, io.config.intermediate_size = f.intermediate;
      io.config.num_attention_heads = f.heads, io.config.num_key_value_heads = f.kv_heads, io.config.head_dim = f.heads ? f.hidden / f.heads : 0;
      io.config.max_position_embeddings = 2048;
      fill_from_tokenizer(io.config, f.tokenizer);
      io.tokenizer = f.tokenizer;
      io.seed = r.seed;
      init_model(tmp, io);
    }
    fs::remove_all(out / "base");
    fs::rename(tmp, out / "base");
    return missing ? "a tiny random model (" + r.base + " was missing)" : "";
  });
  if (made) base = out / "base";
  if (!fs::exists(base / "config.json") || !fs::exists(base / "model.safetensors")) fail(base.string(), "not an HF model directory (config.json and model.safetensors)");

  // 2-3. Teacher data and Zephyr-beta's filter.
  const fs::path data = r.data_dir.empty() ? out / "data" : fs::path(r.data_dir);
  stages.run("data", r.data_dir.empty() ? "the teacher writes dialogues, feedback prompts and held-out questions" : "reading " + r.data_dir,
             [&]() -> std::string {
               if (!r.data_dir.empty()) {
                 for (const char* f : {"sft.jsonl", "feedback_prompts.jsonl", "mt_bench.jsonl", "alpaca_eval.jsonl"})
                   if (!fs::exists(data / f)) fail((data / f).string(), "missing (a data directory holds sft.jsonl, feedback_prompts.jsonl, mt_bench.jsonl, alpaca_eval.jsonl)");
                 return "from " + r.data_dir;
               }
               SynthConfig sc = r.synth;
               sc.out_dir = data.string();
               const SynthSummary s = synth_data(sc);
               int64_t flaws = 0;
               for (const auto& [_, n] : s.flaws) flaws += n;
               return std::to_string(s.sft) + " dSFT dialogues (" + std::to_string(flaws) + " with an injected flaw), " + std::to_string(s.feedback) +
                      " feedback prompts, " + std::to_string(s.eval_questions) + " two-turn and " + std::to_string(s.eval_instructions) +
                      " single held-out evaluation prompts";
             });
  const fs::path sft_data = out / "data" / "sft_filtered.jsonl";
  stages.run("filter", "dropping mis-cased and boilerplate answers and duplicate prompts", [&]() -> std::string {
    fs::create_directories(out / "data");
    FilterConfig fc;
    fc.in = (data / "sft.jsonl").string();
    fc.out = sft_data.string();
    fc.rejected = (out / "data" / "sft_rejected.jsonl").string();
    if (!r.filter_rules.empty()) fc.rules = FilterRules::load(r.filter_rules);
    const FilterSummary s = filter_chats(fc);
    std::string note = "kept " + std::to_string(s.kept) + " of " + std::to_string(s.rows);
    for (const auto& [rule, n] : s.by_rule) note += ", " + rule + " " + std::to_string(n);
    if (s.labelled)
      note += "; injected flaws caught " + std::to_string(s.labelled_caught) + "/" + std::to_string(s.labelled) + ", clean rows dropped " +
              std::to_string(s.clean_dropped);
    return note;
  });

  // 4. dSFT; its first checkpoint is the "early dSFT" generator.
  const fs::path dsft = out / "dsft";
  auto train_stage = [&](Stage kind, const std::string& config, std::vector<std::pair<std::string, std::string>> overrides, const fs::path& from,
                         const std::string& dataset, const fs::path& to) {
    overrides.insert(overrides.begin(), {{"model_name_or_path", from.string()}, {"dataset_path", dataset}, {"output_dir", to.string()}});
    const TrainSummary s = run_stage(kind, TrainConfig::load(config, overrides), !list_checkpoints(to).empty());
    char note[96];
    std::snprintf(note, sizeof note, "last loss %.4f after %lld steps", s.final_loss, (long long)s.steps);
    return std::string(note);
  };
  stages.run("sft", "dSFT of the base on the filtered teacher dialogues (" + r.sft_config + ")",
             [&] { return train_stage(Stage::Sft, r.sft_config, r.sft_overrides, base, sft_data.string(), dsft); });
  const std::vector<fs::path> checkpoints = list_checkpoints(dsft);
  const fs::path early = checkpoints.empty() ? fs::path() : checkpoints.front();

  // 5-7. AI feedback: completions from the generators, the judge's scores, chosen/rejected pairs.
  auto model_path = [&](const std::string& name) -> std::string {
    if (name == "base") return base.string();
    if (name == "dsft") return dsft.string();
    if (name == "dsft_early") {
      if (early.empty()) fail("feedback.generators: dsft_early", "dSFT saved no checkpoint; set save_steps in " + r.sft_config);
      return early.string();
    }
    return name;
  };
  const fs::path fb = out / "feedback";
  fs::create_directories(fb);
  stages.run("feedback-generate", std::to_string(r.generators.size()) + " generators answer the feedback prompts", [&] {
    GenerateConfig gc;
    gc.prompts = (data / "feedback_prompts.jsonl").string();
    gc.out = (fb / "completions.jsonl").string();
    for (const GeneratorEntry& e : r.generators) {
      GeneratorConfig g;
      g.spec = parse_model_spec(model_path(e.model));
      char name[96];
      std::snprintf(name, sizeof name, "%s@T%.2g", e.model.c_str(), e.temperature);
      g.name = name;
      g.completions = e.completions;
      g.sampling.temperature = e.temperature;
      g.sampling.top_p = e.top_p;
      g.sampling.top_k = 0;
      g.max_tokens = r.feedback_max_tokens;
      gc.generators.push_back(g);
    }
    gc.concurrency = r.concurrency;
    gc.seed = r.seed;
    return count_line("completions", feedback_generate(gc));
  });
  stages.run("feedback-judge", "the judge (" + judge.label() + ") rates every prompt's completions", [&] {
    JudgeConfig jc;
    jc.in = (fb / "completions.jsonl").string();
    jc.out = (fb / "judged.jsonl").string();
    jc.judge = judge;
    jc.concurrency = r.concurrency;
    jc.seed = r.seed;
    return count_line("prompts judged", feedback_judge(jc));
  });
  stages.run("feedback-binarize", "chosen/rejected pairs (" + r.binarize_strategy + " rejected)", [&] {
    BinarizeConfig bc;
    bc.in = (fb / "judged.jsonl").string();
    bc.out = (fb / "pairs.jsonl").string();
    bc.seed = r.seed;
    bc.strategy = r.binarize_strategy;
    const FeedbackSummary s = feedback_binarize(bc);
    if (s.pairs == 0)
      fail(bc.out, "no preference pairs: every prompt's completions were scored alike (" + std::to_string(s.ties) +
                       " tied); dDPO needs completions the judge tells apart");
    return std::to_string(s.pairs) + " pairs; " + std::to_string(s.ties) + " prompts dropped for tied scores, " + std::to_string(s.too_few) +
           " for too few scored completions";
  });

  // 8-9. dDPO from dSFT (the recipe) and from the base (the ablation).
  const std::string pairs = (fb / "pairs.jsonl").string();
  const fs::path dsft_ddpo = out / "dsft_ddpo", ddpo_only = out / "ddpo_only";
  stages.run("dpo", "dDPO of dSFT on the pairs (" + r.dpo_config + ")",
             [&] { return train_stage(Stage::Dpo, r.dpo_config, r.dpo_overrides, dsft, pairs, dsft_ddpo); });
  stages.run("dpo-only", "dDPO of the base on the same pairs (the ablation without dSFT)",
             [&] { return train_stage(Stage::Dpo, r.dpo_config, r.dpo_overrides, base, pairs, ddpo_only); });

  // 10-13. Evaluation on the held-out prompts: MT-Bench-style grades and win rates against dSFT.
  struct Evaluated {
    std::string label, key;
    fs::path model;
  };
  const std::vector<Evaluated> models = {{"base", "base", base}, {"dSFT", "dsft", dsft}, {"dDPO only", "ddpo_only", ddpo_only}, {"dSFT+dDPO", "dsft_ddpo", dsft_ddpo}};
  const fs::path ev = out / "eval";
  const std::string dsft_outputs = (ev / "dsft" / "winrate" / "outputs.jsonl").string();
  // dSFT first: its answers are the other models' win-rate baseline.
  for (const size_t i : {size_t(1), size_t(0), size_t(2), size_t(3)}) {
    const Evaluated& m = models[i];
    stages.run("eval-" + m.key, m.label + ": MT-Bench-style grades and win rate against dSFT", [&]() -> std::string {
      auto settings = [&](auto& cfg, const std::string& dir) {  // what mt-bench and winrate share
        cfg.model = parse_model_spec(m.model.string());
        cfg.judge.judge = judge;
        cfg.temperature = r.eval_temperature;
        cfg.max_tokens = r.eval_max_tokens;
        cfg.concurrency = r.concurrency;
        cfg.seed = r.seed;
        cfg.out_dir = (ev / m.key / dir).string();
        fs::create_directories(cfg.out_dir);
      };
      MtBenchConfig mc;
      mc.questions = (data / "mt_bench.jsonl").string();
      settings(mc, "mt_bench");
      const MtBenchResult mr = eval_mt_bench(mc);
      WinrateConfig wc;
      wc.instructions = (data / "alpaca_eval.jsonl").string();
      wc.baseline = m.key == "dsft" ? m.model.string() : dsft_outputs;
      settings(wc, "winrate");
      const WinrateResult wr = eval_winrate(wc);
      char b[160];
      std::snprintf(b, sizeof b, "judge score %.2f, win rate vs dSFT %.1f%%", mr.overall.both, wr.win_rate);
      return b;
    });
  }

  // 14. The report, ending with the final model answering the model card's prompt.
  std::string markdown;
  stages.run("report", "report.md, radar.svg, training.svg", [&]() -> std::string {
    ReportInputs in;
    in.out_dir = out.string();
    in.questions = (data / "mt_bench.jsonl").string();
    for (const Evaluated& m : models)
      in.models.push_back({m.label, (ev / m.key / "mt_bench").string(), (ev / m.key / "winrate").string()});
    in.sft_metrics = (dsft / "metrics.jsonl").string();
    in.dpo_metrics = {{"dSFT+dDPO", (dsft_ddpo / "metrics.jsonl").string()}, {"dDPO only", (ddpo_only / "metrics.jsonl").string()}};
    in.notes = stages.notes();
    if (!r.showcase_prompt.empty()) {
      ClientOptions co;
      co.parallel = 1;
      auto client = make_model_client(parse_model_spec(dsft_ddpo.string()), co);
      ChatCall call;
      if (!r.showcase_system.empty()) call.messages.push_back({{"role", "system"}, {"content", r.showcase_system}});
      call.messages.push_back({{"role", "user"}, {"content", r.showcase_prompt}});
      call.sampling.temperature = 0.7, call.sampling.top_k = 50, call.sampling.top_p = 0.95, call.sampling.seed = r.seed;
      call.max_tokens = 128;
      const ChatReply reply = client->complete(call);
      if (!reply.error.empty()) fail("showcase", reply.error);
      in.showcase_system = r.showcase_system, in.showcase_prompt = r.showcase_prompt, in.showcase_answer = reply.text;
    }
    markdown = write_report(in);
    return "";
  });
  if (markdown.empty()) markdown = read_file(out / "report.md");
  return markdown;
}

}  // namespace zephyr

// zephyr sft / zephyr pretrain: training runs from a recipe (alignment-handbook YAML keys).
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/model_dir.h"
#include "train/dataset.h"
#include "train/sft_objective.h"
#include "train/trainer.h"

namespace zephyr::cli {

namespace {

struct TrainArgs {
  std::string config;
  bool resume = false;
  ThreadsFlag threads;
};

CLI::App* add_train_command(CLI::App& app, const std::string& name, const std::string& help, TrainArgs& a) {
  auto* cmd = app.add_subcommand(name, help);
  cmd->add_option("--config", a.config, "recipe YAML (alignment-handbook keys); any key can be given as --key value too");
  cmd->add_flag("--resume", a.resume, "continue from the newest checkpoint-N in output_dir");
  a.threads.add(cmd);
  cmd->allow_extras();
  return cmd;
}

int run_training(CLI::App* cmd, const TrainArgs& a, bool sft) {
  a.threads.apply();
  std::vector<std::string> ignored;
  TrainConfig c = TrainConfig::load(a.config, parse_overrides(cmd->remaining()), &ignored);
  c.validate();
  if (!ignored.empty()) {
    std::string list;
    for (auto& k : ignored) list += (list.empty() ? "" : ", ") + k;
    std::fprintf(stderr, "note: recipe keys without effect here: %s\n", list.c_str());
  }
  if (c.bf16) std::fprintf(stderr, "note: bf16 mixed precision is not built yet; training in fp32\n");
  TrainableModel model = TrainableModel::load(c.model_name_or_path);
  const std::filesystem::path dir = ModelDir::resolve(c.model_name_or_path);
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<ChatTemplate> tmpl;
  if (std::filesystem::exists(dir / "tokenizer.json")) {
    tok = std::make_unique<Tokenizer>(Tokenizer::load(dir));
    if (!tok->chat_template().empty()) tmpl = std::make_unique<ChatTemplate>(tok->chat_template());
  }
  auto load = [&](const std::string& path) {
    if (sft) return load_sft_rows(path, tok.get(), tmpl.get(), c.max_seq_length, c.strict);
    if (!tok) fail(dir.string(), "pretraining on text needs the model's tokenizer.json");
    return load_text_rows(path, *tok, c.max_seq_length, c.strict);
  };
  LoadedRows rows = load(c.dataset_path);
  std::vector<TokenizedRow> train_rows = std::move(rows.rows), eval_rows;
  size_t skipped = rows.skipped;
  if (!c.eval_dataset_path.empty()) {
    LoadedRows ev = load(c.eval_dataset_path);
    eval_rows = std::move(ev.rows);
    skipped += ev.skipped;
  } else {
    eval_rows = split_off(train_rows, c.eval_split_ratio, c.seed);
  }
  if (c.packing) train_rows = pack_rows(train_rows, c.max_seq_length);
  std::fprintf(stderr, "%s: %zu training rows%s, %zu eval rows%s; %.1fM parameters\n", sft ? "sft" : "pretrain",
               train_rows.size(), c.packing ? " (packed)" : "", eval_rows.size(),
               skipped ? (", " + std::to_string(skipped) + " bad lines skipped").c_str() : "",
               double(model.weights().size()) / 1e6);
  SftObjective objective(std::move(train_rows), std::move(eval_rows));
  const TrainSummary s = train(c, model, objective, a.resume);
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::fprintf(stderr, "done: %lld steps, last loss %.4f%s; model written to %s; peak RSS %.1f MB\n", (long long)s.steps,
               s.final_loss, s.eval_loss >= 0 ? (", eval loss " + std::to_string(s.eval_loss)).c_str() : "",
               c.output_dir.c_str(), double(ru.ru_maxrss) / 1024.0);
  return 0;
}

}  // namespace

Run add_sft(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = add_train_command(app, "sft",
                                "Supervised fine-tuning on chat data ({\"messages\"} JSONL, loss on assistant turns) or "
                                "tokenized rows ({\"input_ids\", \"labels\"})",
                                *a);
  return [a, cmd] { return run_training(cmd, *a, true); };
}

Run add_pretrain(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = add_train_command(app, "pretrain", "Next-token training on plain text ({\"text\"} JSONL or a .txt file)", *a);
  return [a, cmd] { return run_training(cmd, *a, false); };
}

}  // namespace zephyr::cli

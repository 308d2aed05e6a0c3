// zephyr sft / pretrain / dpo: training runs from a recipe (alignment-handbook YAML keys).
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/model_dir.h"
#include "train/dataset.h"
#include "kernels/gemm_bf16.h"
#include "train/dpo.h"
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

enum class Stage { Sft, Pretrain, Dpo };

void print_done(const TrainConfig& c, const TrainSummary& s) {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::fprintf(stderr, "done: %lld steps, last loss %.4f%s; model written to %s; peak RSS %.1f MB\n", (long long)s.steps,
               s.final_loss, s.eval_loss >= 0 ? (", eval loss " + std::to_string(s.eval_loss)).c_str() : "",
               c.output_dir.c_str(), double(ru.ru_maxrss) / 1024.0);
}

// DPO: pairs from the dataset file(s), reference log-probs computed once (or read back from
// output_dir/ref_logps.json when resuming), then the shared trainer.
int run_dpo(const TrainConfig& c, TrainableModel& model, const Tokenizer* tok, const ChatTemplate* tmpl, bool resume) {
  DpoConfig dc{c.beta, c.loss_type, c.label_smoothing};
  dc.validate();
  size_t skipped = 0;
  auto load = [&](const std::string& path) {
    LoadedPairs p = load_preference_pairs(path, tok, tmpl, c.max_seq_length, c.max_prompt_length, c.strict);
    skipped += p.skipped;
    return std::move(p.pairs);
  };
  std::vector<PreferencePair> train_pairs = load(c.dataset_path), eval_pairs;
  if (!c.eval_dataset_path.empty()) eval_pairs = load(c.eval_dataset_path);
  else eval_pairs = split_off(train_pairs, c.eval_split_ratio, c.seed);
  std::fprintf(stderr, "dpo: %zu training pairs, %zu eval pairs%s; beta %g, loss %s\n", train_pairs.size(), eval_pairs.size(),
               skipped ? (", " + std::to_string(skipped) + " bad lines skipped").c_str() : "", dc.beta, dc.loss_type.c_str());
  const std::filesystem::path cache = std::filesystem::path(c.output_dir) / "ref_logps.json";
  std::vector<PairLogps> ref_train, ref_eval;
  if (resume && std::filesystem::exists(cache)) {
    read_ref_logps(cache, ref_train, ref_eval);
  } else {
    const TrainableModel ref = c.ref_model.empty() ? model : TrainableModel::load(c.ref_model);
    std::fprintf(stderr, "computing reference log-probs of %zu pairs (%s)\n", train_pairs.size() + eval_pairs.size(),
                 c.ref_model.empty() ? "the starting policy" : c.ref_model.c_str());
    ref_train = pair_logps(ref, train_pairs, c.per_device_eval_batch_size, dc.mean_logps());
    ref_eval = pair_logps(ref, eval_pairs, c.per_device_eval_batch_size, dc.mean_logps());
    std::filesystem::create_directories(c.output_dir);
    write_ref_logps(cache, ref_train, ref_eval);
  }
  DpoObjective objective(dc, std::move(train_pairs), std::move(eval_pairs), std::move(ref_train), std::move(ref_eval));
  print_done(c, train(c, model, objective, resume));
  return 0;
}

int run_training(CLI::App* cmd, const TrainArgs& a, Stage stage) {
  const bool sft = stage != Stage::Pretrain;
  a.threads.apply();
  std::vector<std::string> ignored;
  TrainConfig c = TrainConfig::load(a.config, parse_overrides(cmd->remaining()), &ignored);
  c.validate();
  if (!ignored.empty()) {
    std::string list;
    for (auto& k : ignored) list += (list.empty() ? "" : ", ") + k;
    std::fprintf(stderr, "note: recipe keys without effect here: %s\n", list.c_str());
  }
  if (c.bf16 && !gemm_bf16_available())
    std::fprintf(stderr, "note: this CPU has no AVX512-BF16; bf16: true falls back to fp32 matmuls\n");
  TrainableModel model = TrainableModel::load(c.model_name_or_path);
  const std::filesystem::path dir = ModelDir::resolve(c.model_name_or_path);
  auto [tok, tmpl] = load_optional_tokenizer(c.model_name_or_path);
  if (stage == Stage::Dpo) return run_dpo(c, model, tok.get(), tmpl.get(), a.resume);
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
  print_done(c, train(c, model, objective, a.resume));
  return 0;
}

}  // namespace

Run add_sft(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = add_train_command(app, "sft",
                                "Supervised fine-tuning on chat data ({\"messages\"} JSONL, loss on assistant turns) or "
                                "tokenized rows ({\"input_ids\", \"labels\"})",
                                *a);
  return [a, cmd] { return run_training(cmd, *a, Stage::Sft); };
}

Run add_dpo(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = add_train_command(app, "dpo",
                                "Direct preference optimisation on pairs ({\"prompt\", \"chosen\", \"rejected\"} JSONL as in "
                                "ultrafeedback_binarized, or tokenized *_input_ids / *_labels); recipe keys plus beta, loss_type, "
                                "max_length, max_prompt_length, ref_model",
                                *a);
  return [a, cmd] { return run_training(cmd, *a, Stage::Dpo); };
}

Run add_pretrain(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = add_train_command(app, "pretrain", "Next-token training on plain text ({\"text\"} JSONL or a .txt file)", *a);
  return [a, cmd] { return run_training(cmd, *a, Stage::Pretrain); };
}

}  // namespace zephyr::cli

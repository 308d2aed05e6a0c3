// zephyr sft / pretrain / dpo: training runs from a recipe (alignment-handbook YAML keys).
#include <sys/resource.h>

#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "train/stage.h"
#include "train/world.h"

namespace zephyr::cli {

namespace {

struct TrainArgs {
  std::string config;
  bool resume = false;
  int world_size = 0;
  ThreadsFlag threads;
};

CLI::App* add_train_command(CLI::App& app, const std::string& name, const std::string& help, TrainArgs& a) {
  auto* cmd = app.add_subcommand(name, help);
  cmd->add_option("--config", a.config, "recipe YAML (alignment-handbook keys); any key can be given as --key value too");
  cmd->add_flag("--resume", a.resume, "continue from the newest checkpoint-N in output_dir");
  cmd->add_option("--world-size", a.world_size,
                  "processes the launcher must have started (mpirun -np N; checked); 1 = train alone")
      ->check(CLI::PositiveNumber);
  a.threads.add(cmd);
  cmd->allow_extras();
  return cmd;
}

void print_done(const TrainConfig& c, const TrainSummary& s) {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::fprintf(stderr, "done: %lld steps, last loss %.4f%s; model written to %s; peak RSS %.1f MB\n", (long long)s.steps,
               s.final_loss, s.eval_loss >= 0 ? (", eval loss " + std::to_string(s.eval_loss)).c_str() : "",
               c.output_dir.c_str(), double(ru.ru_maxrss) / 1024.0);
}

// Joins the launcher's MPI world (mpirun -np N zephyr ...) and checks it is the expected one.
void join_world(const TrainArgs& a) {
  const World& world = World::get();
  if (a.world_size > 0 && a.world_size != world.size())
    fail("--world-size", "expected " + std::to_string(a.world_size) + " processes, the launcher started " +
                             std::to_string(world.size()) +
                             (world.size() == 1 && mpi_library().empty() ? " (this build has no MPI)" : ""));
}

int run_training(CLI::App* cmd, const TrainArgs& a, Stage stage) {
  join_world(a);
  a.threads.apply();
  std::vector<std::string> ignored;
  TrainConfig c = TrainConfig::load(a.config, parse_overrides(cmd->remaining()), &ignored);
  c.validate();
  if (!ignored.empty() && World::get().main()) {
    std::string list;
    for (auto& k : ignored) list += (list.empty() ? "" : ", ") + k;
    std::fprintf(stderr, "note: recipe keys without effect here: %s\n", list.c_str());
  }
  const TrainSummary s = run_stage(stage, c, a.resume);
  if (World::get().main()) print_done(c, s);
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

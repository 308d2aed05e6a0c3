// zephyr bench: prompt and generation tokens/s of a model, like llama-bench.
#include <sys/resource.h>

#include <cmath>
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/parallel.h"
#include "generate/benchmark.h"
#include "kernels/quant.h"
#include "kernels/matmul.h"

namespace zephyr::cli {

namespace {

std::pair<double, double> mean_sd(const std::vector<double>& v) {
  if (v.empty()) return {0, 0};
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= double(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return {m, v.size() > 1 ? std::sqrt(s / double(v.size() - 1)) : 0.0};
}

}  // namespace

Run add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Measure prompt (pp) and generation (tg) tokens/s of a model, like llama-bench");
  struct Args {
    std::string model;
    int64_t prompt = 512, gen = 128;
    int reps = 3;
    bool json = false;
    ThreadsFlag threads;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("-m,--model", a->model, "model directory (Hugging Face layout) or GGUF file")->required();
  cmd->add_option("-p,--prompt", a->prompt, "prompt tokens (default 512; 0 skips)")->check(CLI::NonNegativeNumber);
  cmd->add_option("-n,--gen", a->gen, "generated tokens (default 128; 0 skips)")->check(CLI::NonNegativeNumber);
  cmd->add_option("-r,--repetitions", a->reps, "repetitions (default 3)")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", a->json, "print one JSON object instead of a table");
  a->threads.add(cmd);
  return [a] {
    a->threads.apply();
    const Model model = Model::load(a->model);
    const SpeedRun run = measure_speed(model, a->prompt, a->gen, a->reps);
    const auto [pp, pp_sd] = mean_sd(run.prompt_tps);
    const auto [tg, tg_sd] = mean_sd(run.gen_tps);
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    const double gb = double(weight_bytes_per_token(model)) / 1e9, rss = double(ru.ru_maxrss) / 1e6;
    const std::string type = weight_types(model);
    if (a->json) {
      std::printf("{\"model\": \"%s\", \"type\": \"%s\", \"params\": %lld, \"weight_gb_per_token\": %.4f, \"threads\": %d, "
                  "\"pp\": %lld, \"pp_tps\": %.3f, \"pp_sd\": %.3f, \"tg\": %lld, \"tg_tps\": %.3f, \"tg_sd\": %.3f, "
                  "\"peak_rss_gb\": %.3f, \"gemv\": \"%s\"}\n",
                  a->model.c_str(), type.c_str(), (long long)model.config.num_parameters(), gb, num_threads(),
                  (long long)a->prompt, pp, pp_sd, (long long)a->gen, tg, tg_sd, rss,
                  type.find('Q') != std::string::npos ? quant_isa() : gemv_isa());
      return 0;
    }
    std::printf("| model | type | params | threads | test | tokens/s |\n|---|---|---|---|---|---|\n");
    const double params = double(model.config.num_parameters()) / 1e9;
    if (a->prompt > 0)
      std::printf("| %s | %s | %.2fB | %d | pp%lld | %.2f ± %.2f |\n", a->model.c_str(), type.c_str(), params, num_threads(),
                  (long long)a->prompt, pp, pp_sd);
    if (a->gen > 0)
      std::printf("| %s | %s | %.2fB | %d | tg%lld | %.2f ± %.2f |\n", a->model.c_str(), type.c_str(), params, num_threads(),
                  (long long)a->gen, tg, tg_sd);
    std::printf("weights read per token: %.2f GB; peak RSS %.2f GB\n", gb, rss);
    return 0;
  };
}

}  // namespace zephyr::cli

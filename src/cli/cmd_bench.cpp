// zephyr bench: prompt and generation tokens/s of a model, like llama-bench.
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/parallel.h"
#include "generate/benchmark.h"

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

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

Run add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Measure prompt (pp) and generation (tg) tokens/s of a model, like llama-bench");
  struct Args {
    ModelFlags model;
    int64_t prompt = 512, gen = 128;
    int reps = 3;
    int64_t batch = 1;
    bool json = false, paired_read = false;
    ThreadsFlag threads;
  };
  auto a = std::make_shared<Args>();
  a->model.add(cmd);
  cmd->add_option("-p,--prompt", a->prompt, "prompt tokens (default 512; 0 skips)")->check(CLI::NonNegativeNumber);
  cmd->add_option("-n,--gen", a->gen, "generated tokens (default 128; 0 skips)")->check(CLI::NonNegativeNumber);
  cmd->add_option("-r,--repetitions", a->reps, "repetitions (default 3)")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", a->json, "print one JSON object instead of a table");
  cmd->add_flag("--paired-read", a->paired_read,
                "after each generated token, time a plain read of the same weights and report decode as a share of it "
                "(the memory-bandwidth bound, measured under the same conditions as each token)");
  cmd->add_option("-b,--batch", a->batch,
                 "decode this many sequences together, as the server batches its clients, and report their aggregate "
                 "tokens/s (default 1: the single-stream tg)")
      ->check(CLI::PositiveNumber);
  a->threads.add(cmd);
  return [a] {
    a->threads.apply();
    if (a->prompt == 0 && a->gen == 0) throw Error("nothing to measure: --prompt and --gen are both 0");
    const Model model = a->model.load();
    if (a->batch > 1 && a->paired_read) throw Error("--paired-read measures single-stream decode; leave out --batch");
    SpeedRun run = measure_speed(model, a->prompt, a->batch > 1 ? 0 : a->gen, a->reps, a->paired_read);
    if (a->batch > 1 && a->gen > 0) run.gen_tps = measure_batched_decode(model, a->batch, a->gen, a->reps);
    const auto [pp, pp_sd] = mean_sd(run.prompt_tps);
    const auto [tg, tg_sd] = mean_sd(run.gen_tps);
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    const double gb = double(weight_bytes_per_token(model)) / 1e9, rss = double(ru.ru_maxrss) / 1e6;
    const std::string type = weight_types(model);
    // Paired reads: per token the read's time over the token's (1.0 = as fast as a plain read).
    std::vector<double> share, token_gbps, read_gbps;
    for (size_t i = 0; i < run.token_s.size(); ++i) {
      share.push_back(run.read_s[i] / run.token_s[i]);
      token_gbps.push_back(gb / run.token_s[i]);
      read_gbps.push_back(gb / run.read_s[i]);
    }
    if (a->json) {
      std::string paired;
      if (!share.empty())
        paired = ", \"paired_tokens\": " + std::to_string(share.size()) + ", \"tg_share_of_read\": " + std::to_string(median(share)) +
                 ", \"tg_gb_per_s\": " + std::to_string(median(token_gbps)) + ", \"read_gb_per_s\": " + std::to_string(median(read_gbps));
      std::printf("{\"model\": \"%s\", \"type\": \"%s\", \"params\": %lld, \"weight_gb_per_token\": %.4f, \"threads\": %d, "
                  "\"pp\": %lld, \"pp_tps\": %.3f, \"pp_sd\": %.3f, \"tg\": %lld, \"batch\": %lld, \"tg_tps\": %.3f, \"tg_sd\": %.3f, "
                  "\"peak_rss_gb\": %.3f, \"gemv\": \"%s\"%s}\n",
                  a->model.path().c_str(), type.c_str(), (long long)model.config.num_parameters(), gb, num_threads(),
                  (long long)a->prompt, pp, pp_sd, (long long)a->gen, (long long)a->batch, tg, tg_sd, rss,
                  decode_isa(model), paired.c_str());
      return 0;
    }
    std::printf("| model | type | params | threads | test | tokens/s |\n|---|---|---|---|---|---|\n");
    const double params = double(model.config.num_parameters()) / 1e9;
    if (a->prompt > 0)
      std::printf("| %s | %s | %.2fB | %d | pp%lld | %.2f ± %.2f |\n", a->model.path().c_str(), type.c_str(), params, num_threads(),
                  (long long)a->prompt, pp, pp_sd);
    if (a->gen > 0)
      std::printf("| %s | %s | %.2fB | %d | tg%lld%s | %.2f ± %.2f |\n", a->model.path().c_str(), type.c_str(), params, num_threads(),
                  (long long)a->gen, a->batch > 1 ? (" x" + std::to_string(a->batch)).c_str() : "", tg, tg_sd);
    std::printf("weights read per token: %.2f GB; peak RSS %.2f GB\n", gb, rss);
    if (!share.empty())
      std::printf("decode against a plain read of the same weights after each token (medians of %zu): %.0f%% "
                  "(decode %.1f GB/s, read %.1f GB/s)\n",
                  share.size(), 100 * median(share), median(token_gbps), median(read_gbps));
    return 0;
  };
}

}  // namespace zephyr::cli

// zephyr perplexity: exp of the mean negative log-likelihood of a text, scored in windows.
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/json_file.h"
#include "model/scoring.h"

namespace zephyr::cli {

Run add_perplexity(CLI::App& app) {
  auto* cmd = app.add_subcommand("perplexity",
                                 "Perplexity of a text file: the ids (no BOS) are cut into windows of ctx-1 tokens, each "
                                 "scored after a BOS");
  auto model = std::make_shared<ModelFlags>();
  auto file = std::make_shared<std::string>();
  auto ctx = std::make_shared<int64_t>(512);
  auto threads = std::make_shared<ThreadsFlag>();
  model->add(cmd);
  cmd->add_option("-f,--file", *file, "text file to score")->required();
  cmd->add_option("--ctx", *ctx, "window size in tokens, BOS included (default 512)")->check(CLI::Range(2, 1 << 20));
  threads->add(cmd);
  return [=] {
    threads->apply();
    const Model m = model->load();
    const Tokenizer tok = model_tokenizer(m);
    const std::vector<int> ids = tok.encode(read_file(*file), false);
    int bos = tok.bos_id();
    if (bos < 0) bos = int(m.config.bos_token_id);
    if (bos < 0) fail(model->path(), "the model has no BOS token to start each window with");
    if (ids.empty()) fail(*file, "has no tokens to score");
    const bool tty = isatty(STDERR_FILENO);  // progress only where someone watches it
    SequenceScore s;
    try {
      s = score_windows(m, ids, bos, *ctx, [&](int64_t w, int64_t windows, double running) {
        if (tty) std::fprintf(stderr, "\rwindow %lld/%lld  running perplexity %.4f", (long long)w, (long long)windows, running);
      });
    } catch (const Error& e) {
      if (e.field() != "ctx") throw;
      fail("--ctx", e.reason());
    }
    if (tty) std::fprintf(stderr, "\n");
    std::printf("perplexity: %.6f\ntokens: %lld\n", std::exp(s.nll / double(s.tokens)), (long long)s.tokens);
    return 0;
  };
}

}  // namespace zephyr::cli

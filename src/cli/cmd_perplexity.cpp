// zephyr perplexity: exp of the mean negative log-likelihood of a text, scored in windows.
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/json_file.h"
#include "model/inference.h"
#include "model/scoring.h"

namespace zephyr::cli {

Run add_perplexity(CLI::App& app) {
  auto* cmd = app.add_subcommand("perplexity",
                                 "Perplexity of a text file: the ids (no BOS) are cut into windows of ctx-1 tokens, each "
                                 "scored after a BOS");
  auto model_path = std::make_shared<std::string>();
  auto file = std::make_shared<std::string>();
  auto ctx = std::make_shared<int64_t>(512);
  auto threads = std::make_shared<ThreadsFlag>();
  cmd->add_option("-m,--model", *model_path, "model directory (Hugging Face layout) or GGUF file")->required();
  cmd->add_option("-f,--file", *file, "text file to score")->required();
  cmd->add_option("--ctx", *ctx, "window size in tokens, BOS included (default 512)")->check(CLI::Range(2, 1 << 20));
  threads->add(cmd);
  return [=] {
    threads->apply();
    const Model model = Model::load(*model_path);
    const Tokenizer tok = load_model_tokenizer(model);
    const std::vector<int> ids = tok.encode(read_file(*file), false);
    int bos = tok.bos_id();
    if (bos < 0) bos = int(model.config.bos_token_id);
    if (bos < 0) fail(*model_path, "the model has no BOS token to start each window with");
    if (ids.empty()) fail(*file, "has no tokens to score");
    if (*ctx > model.config.max_position_embeddings)
      fail("--ctx", "is larger than the model's context (" + std::to_string(model.config.max_position_embeddings) + ")");
    InferenceState state(model);
    const bool tty = isatty(STDERR_FILENO);  // progress only where someone watches it
    double nll = 0;
    int64_t scored = 0;
    const int64_t window = *ctx - 1, windows = (int64_t(ids.size()) + window - 1) / window;
    for (int64_t w = 0; w < windows; ++w) {
      std::vector<int> seq{bos};
      const int64_t begin = w * window, end = std::min<int64_t>(begin + window, int64_t(ids.size()));
      seq.insert(seq.end(), ids.begin() + begin, ids.begin() + end);
      state.truncate(0);
      const SequenceScore s = score_sequence(model, state, seq);
      nll += s.nll;
      scored += s.tokens;
      if (tty)
        std::fprintf(stderr, "\rwindow %lld/%lld  running perplexity %.4f", (long long)(w + 1), (long long)windows,
                     std::exp(nll / double(scored)));
    }
    if (tty) std::fprintf(stderr, "\n");
    std::printf("perplexity: %.6f\ntokens: %lld\n", std::exp(nll / double(scored)), (long long)scored);
    return 0;
  };
}

}  // namespace zephyr::cli

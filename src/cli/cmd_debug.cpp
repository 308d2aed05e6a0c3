// zephyr debug: numeric dumps for checking zephyr against reference implementations.
#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/json_file.h"
#include "model/inference.h"

namespace zephyr::cli {

namespace {

std::vector<int> parse_ids(const std::string& text) {
  std::vector<int> ids;
  std::istringstream in(text);
  std::string tok;
  while (in >> tok) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != tok.size() || v < 0 || v > INT32_MAX) fail("--ids", "'" + tok + "' is not a token id (expected non-negative integers)");
    ids.push_back(int(v));
  }
  if (ids.empty()) fail("--ids", "no ids given");
  return ids;
}

}  // namespace

Run add_debug(CLI::App& app) {
  auto* cmd = app.add_subcommand("debug", "Numeric dumps for checking against reference implementations");
  cmd->require_subcommand(1);
  auto* logits = cmd->add_subcommand("logits", "Logits of one forward pass over exactly the given ids (no BOS added), "
                                               "as little-endian fp32 [n_ids, vocab]");
  auto model_path = std::make_shared<std::string>();
  auto ids_text = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto threads = std::make_shared<ThreadsFlag>();
  logits->add_option("-m,--model", *model_path, "model directory")->required();
  logits->add_option("--ids", *ids_text, "token ids separated by spaces")->required();
  logits->add_option("-o,--output", *out, "file to write")->required();
  threads->add(logits);
  return [=] {
    threads->apply();
    const std::vector<int> ids = parse_ids(*ids_text);
    const Model model = Model::load(*model_path);
    InferenceState state(model);
    std::vector<float> result(ids.size() * size_t(model.config.vocab_size));
    forward(model, ids.data(), int64_t(ids.size()), state, result.data(), true);
    write_file_atomic(*out, std::string(reinterpret_cast<const char*>(result.data()), result.size() * sizeof(float)));
    std::fprintf(stderr, "wrote %s: [%zu, %lld] fp32\n", out->c_str(), ids.size(), (long long)model.config.vocab_size);
    return 0;
  };
}

}  // namespace zephyr::cli

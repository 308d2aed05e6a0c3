// zephyr debug: numeric dumps for checking zephyr against reference implementations.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/inference.h"
#include "model/trainable.h"
#include "train/sft_data.h"

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

// One batch of all rows in the file, padded and masked as in training: the mean loss over every
// target token and the gradient of every parameter, under HF names.
int run_sft_grads(const std::string& model_path, const std::string& data, int64_t max_len, const std::string& out) {
  TrainableModel model = TrainableModel::load(model_path);
  const std::filesystem::path dir = ModelDir::resolve(model_path);
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<ChatTemplate> tmpl;
  if (std::filesystem::exists(dir / "tokenizer.json")) {
    tok = std::make_unique<Tokenizer>(Tokenizer::load(dir));
    if (!tok->chat_template().empty()) tmpl = std::make_unique<ChatTemplate>(tok->chat_template());
  }
  std::ifstream in(data);
  if (!in) fail(data, "cannot open");
  std::vector<TokenizedRow> rows;
  for_each_jsonl(in, data, [&](const ordered_json& row, size_t line) {
    rows.push_back(sft_row(row, tok.get(), tmpl.get(), max_len, data + ":" + std::to_string(line)));
  });
  if (rows.empty()) fail(data, "has no rows");
  const int pad = tok && tok->eos_id() >= 0 ? tok->eos_id() : 0;
  const TokenBatch batch = make_batch(rows, pad);
  const int64_t targets = count_targets(batch);
  if (targets == 0) fail(data, "no row has a token with a label (nothing to compute a loss on)");
  model.zero_grads();
  const LossSum loss = forward_backward(model, batch, 1.0f / float(targets));
  std::vector<TensorToWrite> tensors;
  for (size_t i = 0; i < model.params().size(); ++i) {
    const ParamInfo& p = model.params()[i];
    tensors.push_back({p.name, DType::F32, p.shape, model.grad(i)});
  }
  write_safetensors(out, tensors, {{"format", "pt"}});
  std::printf("{\"loss\": %.9g, \"targets\": %lld}\n", loss.nll / double(targets), (long long)targets);
  return 0;
}

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
  auto* grads = cmd->add_subcommand("sft-grads", "Loss and gradients of one batch made of every row of a JSONL file "
                                                 "({\"messages\"} or {\"input_ids\", \"labels\"}), padded and masked "
                                                 "as in training; prints {\"loss\"} and writes the gradients");
  auto data = std::make_shared<std::string>();
  auto max_len = std::make_shared<int64_t>(0);
  grads->add_option("-m,--model", *model_path, "model directory")->required();
  grads->add_option("--data", *data, "JSONL rows")->required();
  grads->add_option("--max-seq-length", *max_len, "cut longer rows (default: no limit)")->check(CLI::NonNegativeNumber);
  grads->add_option("-o,--output", *out, "gradients as safetensors (F32, HF tensor names)")->required();
  threads->add(grads);
  return [=] {
    threads->apply();
    if (grads->parsed()) return run_sft_grads(*model_path, *data, *max_len, *out);
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

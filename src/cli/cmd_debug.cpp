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
#include "train/dataset.h"
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
// target token and the gradient of every trainable parameter, under HF names (with an adapter:
// its A and B, under peft's names).
int run_sft_grads(const std::string& model_path, const std::string& lora, const std::string& data, int64_t max_len,
                  const std::string& out) {
  TrainableModel model = lora.empty() ? TrainableModel::load(model_path) : TrainableModel::load_frozen(model_path, std::nullopt);
  if (!lora.empty()) {
    const PeftAdapter adapter = PeftAdapter::load(lora);
    model.add_lora(adapter.config, 0);
    model.load_weights(lora);
  }
  auto [tok, tmpl] = load_optional_tokenizer(model_path);
  std::ifstream in(data);
  if (!in) fail(data, "cannot open");
  std::vector<TokenizedRow> rows;
  for_each_jsonl(in, data, [&](const ordered_json& row, size_t line) {
    rows.push_back(sft_row(row, tok.get(), tmpl.get(), max_len, ""));  // for_each_jsonl names the line
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
    if (p.trainable) tensors.push_back({p.name, DType::F32, p.shape, model.grad(i)});
  }
  write_safetensors(out, tensors, {{"format", "pt"}});
  std::printf("{\"loss\": %.9g, \"targets\": %lld}\n", loss.nll / double(targets), (long long)targets);
  return 0;
}

// One batch of all pairs: the DPO loss and TRL's metrics as one JSON object, optionally the
// policy's gradients (of the mean loss over pairs) under HF names.
int run_dpo_loss(const std::string& policy_path, const std::string& ref_path, const std::string& data, const DpoConfig& dc,
                 int64_t max_length, int64_t max_prompt_length, const std::string& out) {
  dc.validate();
  TrainableModel policy = TrainableModel::load(policy_path);
  const TrainableModel ref = TrainableModel::load(ref_path);
  auto [tok, tmpl] = load_optional_tokenizer(policy_path);
  LoadedPairs pairs = load_preference_pairs(data, tok.get(), tmpl.get(), max_length, max_prompt_length, true);
  if (pairs.pairs.empty()) fail(data, "has no pairs");
  const size_t n = pairs.pairs.size();
  std::vector<PairLogps> ref_logps = pair_logps(ref, pairs.pairs, int64_t(n), dc.mean_logps());
  DpoObjective objective(dc, std::move(pairs.pairs), {}, std::move(ref_logps), {});
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;
  policy.zero_grads();
  const ObjectiveStats st = objective.train_step(policy, all, 1.0 / double(n), PassOptions{});
  json result = {{"loss", st.loss_sum / double(n)}};
  for (auto& [k, v] : st.sums) result[k] = v / double(n);
  if (!out.empty()) {
    std::vector<TensorToWrite> tensors;
    for (size_t i = 0; i < policy.params().size(); ++i)
      if (policy.params()[i].trainable) tensors.push_back({policy.params()[i].name, DType::F32, policy.params()[i].shape, policy.grad(i)});
    write_safetensors(out, tensors, {{"format", "pt"}});
  }
  std::printf("%s\n", result.dump().c_str());
  return 0;
}

Run add_debug(CLI::App& app) {
  auto* cmd = app.add_subcommand("debug", "Numeric dumps for checking against reference implementations");
  cmd->require_subcommand(1);
  auto* logits = cmd->add_subcommand("logits", "Logits of one forward pass over exactly the given ids (no BOS added), "
                                               "as little-endian fp32 [n_ids, vocab]");
  auto model_path = std::make_shared<std::string>();
  auto lora = std::make_shared<std::string>();
  auto model_flags = std::make_shared<ModelFlags>();
  auto ids_text = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto threads = std::make_shared<ThreadsFlag>();
  model_flags->add(logits, "model directory or GGUF file");
  logits->add_option("--ids", *ids_text, "token ids separated by spaces")->required();
  logits->add_option("-o,--output", *out, "file to write")->required();
  auto one_by_one = std::make_shared<bool>(false);
  logits->add_flag("--one-by-one", *one_by_one,
                   "run the ids one pass each, as decoding and the server's engine do (whose kernels differ from a prompt's "
                   "on quantized models): the logits the server's log-probs come from");
  threads->add(logits);
  auto* grads = cmd->add_subcommand("sft-grads", "Loss and gradients of one batch made of every row of a JSONL file "
                                                 "({\"messages\"} or {\"input_ids\", \"labels\"}), padded and masked "
                                                 "as in training; prints {\"loss\"} and writes the gradients");
  auto data = std::make_shared<std::string>();
  auto max_len = std::make_shared<int64_t>(0);
  grads->add_option("-m,--model", *model_path, "model directory (or a GGUF file, with --lora: its weights frozen as stored)")->required();
  grads->add_option("--lora", *lora, "train this LoRA adapter (peft's directory) on the frozen model: its gradients only");
  grads->add_option("--data", *data, "JSONL rows")->required();
  grads->add_option("--max-seq-length", *max_len, "cut longer rows (default: no limit)")->check(CLI::NonNegativeNumber);
  grads->add_option("-o,--output", *out, "gradients as safetensors (F32, HF tensor names)")->required();
  threads->add(grads);
  auto* dpo = cmd->add_subcommand("dpo-loss", "DPO loss and TRL's metrics of one batch made of every pair of a JSONL file, "
                                             "optionally the policy's gradients");
  auto ref = std::make_shared<std::string>();
  auto dc = std::make_shared<DpoConfig>();
  auto max_prompt = std::make_shared<int64_t>(512);
  dpo->add_option("-m,--model", *model_path, "policy model directory")->required();
  dpo->add_option("--ref", *ref, "reference model directory")->required();
  dpo->add_option("--data", *data, "preference pairs (JSONL)")->required();
  dpo->add_option("--beta", dc->beta, "DPO beta (default 0.1)");
  dpo->add_option("--loss-type", dc->loss_type, "sigmoid, ipo or hinge (default sigmoid)");
  dpo->add_option("--label-smoothing", dc->label_smoothing, "sigmoid loss label smoothing (default 0)");
  dpo->add_option("--max-length", *max_len, "truncate prompt + completion to this many tokens (default: no limit)");
  dpo->add_option("--max-prompt-length", *max_prompt, "prompt tokens kept when truncating (default 512)");
  dpo->add_option("-o,--output", *out, "write the policy's gradients here (safetensors)");
  threads->add(dpo);
  return [=] {
    threads->apply();
    if (grads->parsed()) return run_sft_grads(*model_path, *lora, *data, *max_len, *out);
    if (dpo->parsed()) return run_dpo_loss(*model_path, *ref, *data, *dc, *max_len, *max_prompt, *out);
    const std::vector<int> ids = parse_ids(*ids_text);
    const Model model = model_flags->load();
    InferenceState state(model);
    std::vector<float> result(ids.size() * size_t(model.config.vocab_size));
    if (*one_by_one)
      for (size_t i = 0; i < ids.size(); ++i) forward(model, &ids[i], 1, state, result.data() + i * size_t(model.config.vocab_size));
    else
      forward(model, ids.data(), int64_t(ids.size()), state, result.data(), true);
    write_file_atomic(*out, std::string(reinterpret_cast<const char*>(result.data()), result.size() * sizeof(float)));
    std::fprintf(stderr, "wrote %s: [%zu, %lld] fp32\n", out->c_str(), ids.size(), (long long)model.config.vocab_size);
    return 0;
  };
}

}  // namespace zephyr::cli

#include "train/stage.h"

#include <cstdio>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "io/model_dir.h"
#include "kernels/gemm_bf16.h"
#include "model/gguf_model.h"
#include "model/model_tokenizer.h"
#include "train/dataset.h"
#include "train/dpo.h"
#include "train/sft_objective.h"
#include "train/world.h"

namespace zephyr {

namespace {

// Log-prob pairs as [chosen, rejected, ...], the form the ranks exchange.
std::vector<double> flatten(const std::vector<PairLogps>& v) {
  std::vector<double> flat;
  for (const PairLogps& p : v) flat.insert(flat.end(), {p.chosen, p.rejected});
  return flat;
}
std::vector<PairLogps> unflatten(const std::vector<double>& flat) {
  std::vector<PairLogps> v(flat.size() / 2);
  for (size_t i = 0; i < v.size(); ++i) v[i] = {flat[2 * i], flat[2 * i + 1]};
  return v;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

std::string skipped_note(size_t skipped) {
  return skipped ? ", " + std::to_string(skipped) + " bad lines skipped" : "";
}

TrainSummary run_dpo(const TrainConfig& c, TrainableModel& model, const Tokenizer* tok, const ChatTemplate* tmpl, bool resume) {
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
  if (World::get().main())
    std::fprintf(stderr, "dpo: %zu training pairs, %zu eval pairs%s; beta %g, loss %s\n", train_pairs.size(), eval_pairs.size(),
               skipped_note(skipped).c_str(), dc.beta, dc.loss_type.c_str());
  const std::filesystem::path cache = std::filesystem::path(c.output_dir) / "ref_logps.json";
  std::vector<PairLogps> ref_train, ref_eval;
  World& world = World::get();
  // The main rank decides whether the cache is read (only it writes files; other hosts may not
  // see them) and shares what it read; otherwise each rank computes its share of the pairs.
  int64_t cached = world.main() && resume && std::filesystem::exists(cache);
  world.broadcast(&cached, 1);
  if (cached) {
    if (world.main()) {
      read_ref_logps(cache, ref_train, ref_eval);
      if (ref_train.size() != train_pairs.size() || ref_eval.size() != eval_pairs.size())
        fail(cache.string(), "holds reference log-probs of " + std::to_string(ref_train.size()) + " + " +
                                 std::to_string(ref_eval.size()) + " pairs, the data has " + std::to_string(train_pairs.size()) +
                                 " + " + std::to_string(eval_pairs.size()) + " (delete it to recompute)");
    }
    for (auto [v, n] : {std::pair{&ref_train, train_pairs.size()}, std::pair{&ref_eval, eval_pairs.size()}}) {
      std::vector<double> flat = flatten(*v);
      flat.resize(2 * n);
      world.broadcast(flat.data(), flat.size());
      *v = unflatten(flat);
    }
  } else {
    // With adapters and no ref_model, the reference is the base: the same weights, adapters off
    // (TRL's DPO with a peft model), so no second model is loaded.
    std::optional<TrainableModel> loaded;
    if (!c.ref_model.empty()) loaded = TrainableModel::load(c.ref_model);
    const TrainableModel& ref = loaded ? *loaded : model;
    model.set_adapters_enabled(false);
    if (world.main())
      std::fprintf(stderr, "computing reference log-probs of %zu pairs (%s)%s\n", train_pairs.size() + eval_pairs.size(),
                   !c.ref_model.empty() ? c.ref_model.c_str() : model.lora() ? "the base model, adapters off" : "the starting policy",
                   world.size() > 1 ? (", split over " + std::to_string(world.size()) + " ranks").c_str() : "");
    const Shard shard{world.rank(), world.size()};
    auto shared_logps = [&](const std::vector<PreferencePair>& pairs) {
      const auto [first, last] = shard.share(pairs.size());
      const std::vector<PreferencePair> part(pairs.begin() + long(first), pairs.begin() + long(last));
      return unflatten(world.gather(flatten(pair_logps(ref, part, c.per_device_eval_batch_size, dc.mean_logps()))));
    };
    ref_train = shared_logps(train_pairs);
    ref_eval = shared_logps(eval_pairs);
    model.set_adapters_enabled(true);
    if (world.main()) {
      std::filesystem::create_directories(c.output_dir);
      write_ref_logps(cache, ref_train, ref_eval);
    }
  }
  DpoObjective objective(dc, std::move(train_pairs), std::move(eval_pairs), std::move(ref_train), std::move(ref_eval));
  return train(c, model, objective, resume);
}

TrainSummary run_sft(const TrainConfig& c, TrainableModel& model, const Tokenizer* tok, const ChatTemplate* tmpl, bool resume,
                     bool conversations) {
  auto load = [&](const std::string& path) {
    if (conversations) return load_sft_rows(path, tok, tmpl, c.max_seq_length, c.strict);
    if (!tok) fail(ModelDir::resolve(c.model_name_or_path).string(), "pretraining on text needs the model's tokenizer.json");
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
  if (World::get().main())
    std::fprintf(stderr, "%s: %zu training rows%s, %zu eval rows%s; %.1fM parameters\n", conversations ? "sft" : "pretrain",
               train_rows.size(), c.packing ? " (packed)" : "", eval_rows.size(), skipped_note(skipped).c_str(),
               double(model.num_parameters()) / 1e6);
  SftObjective objective(std::move(train_rows), std::move(eval_rows));
  return train(c, model, objective, resume);
}

}  // namespace

TrainSummary run_stage(Stage stage, const TrainConfig& c, bool resume) {
  if (c.bf16 && !gemm_bf16_available() && World::get().main())
    std::fprintf(stderr, "note: this CPU has no AVX512-BF16; bf16: true falls back to fp32 matmuls\n");
  // A GGUF or load_in_4bit base stays quantized and frozen: QLoRA.
  const bool gguf = is_gguf_file(c.model_name_or_path);
  if (gguf && !c.use_peft)
    fail(c.model_name_or_path, "is a GGUF file: its quantized weights can only carry adapters (use_peft: true); for full "
                               "training convert it with zephyr export-hf");
  TrainableModel model = gguf || c.load_in_4bit
                             ? TrainableModel::load_frozen(c.model_name_or_path, gguf ? std::nullopt : std::optional(DType::Q4_0))
                             : TrainableModel::load(c.model_name_or_path);
  if (model.frozen_base() && World::get().main())
    std::fprintf(stderr, "qlora: the base's linear layers stay %s and frozen\n",
                 gguf ? "in the GGUF's types" : "quantized to Q4_0 (load_in_4bit)");
  if (c.use_peft) {
    model.add_lora(c.lora, c.seed);
    model.adapter_dropout = !(stage == Stage::Dpo && c.disable_dropout);
    if (World::get().main())
      std::fprintf(stderr, "lora: r %lld, alpha %g%s, dropout %g%s on %s; %.2fM trainable of %.1fM parameters\n",
                   (long long)c.lora.r, c.lora.alpha, c.lora.rslora ? " (rsLoRA)" : "", c.lora.dropout,
                   model.adapter_dropout ? "" : " (off: disable_dropout)", joined(c.lora.targets).c_str(),
                   double(model.trainable_numel()) / 1e6, double(model.num_parameters()) / 1e6);
  }
  auto [tok, tmpl] = load_optional_tokenizer(c.model_name_or_path);
  if (stage == Stage::Dpo) return run_dpo(c, model, tok.get(), tmpl.get(), resume);
  return run_sft(c, model, tok.get(), tmpl.get(), resume, stage == Stage::Sft);
}

}  // namespace zephyr

#include "train/trainer.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "core/error.h"
#include "core/rng.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "kernels/gemm_bf16.h"
#include "train/optimizer.h"
#include "train/world.h"

namespace fs = std::filesystem;

namespace zephyr {

namespace {

// The order of the rows in an epoch: a seeded shuffle, so any position can be recomputed.
std::vector<size_t> epoch_order(size_t n, uint64_t seed, int64_t epoch) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  Rng rng(seed * 0x9e3779b97f4a7c15ull + uint64_t(epoch) + 1);
  for (size_t i = n; i > 1; --i) std::swap(idx[i - 1], idx[rng.next() % i]);
  return idx;
}

struct State {
  int64_t step = 0;    // optimizer steps taken
  int64_t cursor = 0;  // micro-batches consumed (across epochs)
};

// The current epoch's order, recomputed only when the epoch changes.
struct EpochCache {
  int64_t epoch = -1;
  std::vector<size_t> order;
};

// The examples of micro-batch number `cursor` in the stream of epochs.
std::vector<size_t> micro_batch(size_t n, const TrainConfig& c, int64_t cursor, int64_t per_epoch, EpochCache& cache) {
  const int64_t epoch = cursor / per_epoch, k = cursor % per_epoch;
  if (cache.epoch != epoch) cache = {epoch, epoch_order(n, c.seed, epoch)};
  std::vector<size_t> idx;
  for (int64_t i = k * c.per_device_train_batch_size;
       i < std::min<int64_t>((k + 1) * c.per_device_train_batch_size, int64_t(n)); ++i)
    idx.push_back(cache.order[size_t(i)]);
  return idx;
}

// Summed over ranks: the loss, target tokens, examples and each named metric of a group of
// examples, in one vector so one allreduce carries them.
ObjectiveStats summed(World& world, const ObjectiveStats& st, const std::vector<std::string>& names) {
  std::vector<double> v = {st.loss_sum, double(st.tokens), st.count};
  for (auto& k : names) {
    auto it = st.sums.find(k);
    v.push_back(it == st.sums.end() ? 0.0 : it->second);
  }
  world.sum(v.data(), v.size());
  ObjectiveStats out;
  out.loss_sum = v[0], out.tokens = int64_t(v[1]), out.count = v[2];
  for (size_t i = 0; i < names.size(); ++i) out.sums[names[i]] = v[3 + i];
  return out;
}

// Evaluates (each rank its share) and appends {"step", "epoch", "eval_loss", "eval_<metric>"...}
// to the log on the main rank.
double evaluate(World& world, const TrainableModel& model, Objective& obj, const TrainConfig& c, int64_t step, double epoch,
                std::ofstream* log) {
  const ObjectiveStats st = summed(world, obj.evaluate(model, c.per_device_eval_batch_size, {world.rank(), world.size()}),
                                   obj.metric_names());
  const double w = obj.eval_weight(), loss = w > 0 ? st.loss_sum / w : NAN;
  json m = {{"step", step}, {"epoch", epoch}, {"eval_loss", loss}};
  for (auto& [k, v] : st.sums) m["eval_" + k] = st.count > 0 ? v / st.count : 0.0;
  if (log) *log << m.dump() << "\n" << std::flush;
  return loss;
}

void save_checkpoint(const fs::path& out, const TrainableModel& model, AdamW& opt, const State& st, int64_t total,
                     const fs::path& source, int64_t keep) {
  const fs::path final_dir = out / ("checkpoint-" + std::to_string(st.step));
  const fs::path tmp = out / ("checkpoint-" + std::to_string(st.step) + ".tmp");
  fs::remove_all(tmp);
  model.save(tmp, source);
  std::vector<TensorToWrite> state;
  for (const ParamInfo& p : model.params()) {
    if (!p.trainable) continue;
    state.push_back({"exp_avg." + p.name, DType::F32, p.shape, opt.exp_avg().data() + p.grad_offset});
    state.push_back({"exp_avg_sq." + p.name, DType::F32, p.shape, opt.exp_avg_sq().data() + p.grad_offset});
  }
  write_safetensors(tmp / "optimizer.safetensors", state, {{"step", std::to_string(opt.steps())}});
  json ts = {{"global_step", st.step}, {"micro_batches_consumed", st.cursor}, {"max_steps", total},
             {"optimizer_steps", opt.steps()}};
  write_file_atomic(tmp / "trainer_state.json", ts.dump(2) + "\n");
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  if (keep > 0) {  // drop the oldest beyond save_total_limit
    const std::vector<fs::path> cps = list_checkpoints(out);
    for (size_t i = 0; i + size_t(keep) < cps.size(); ++i) fs::remove_all(cps[i]);
  }
}

// A counter of trainer_state.json, checked: the file may have been edited or damaged, and a
// negative step would train with a negative learning rate.
int64_t saved_counter(const json& ts, const char* key, int64_t max, const fs::path& file) {
  const json* v = ts.is_object() && ts.contains(key) ? &ts[key] : nullptr;
  if (!v || !v->is_number_integer()) fail(file.string(), std::string("\"") + key + "\": expected an integer");
  const int64_t n = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX) ? -1 : v->get<int64_t>();
  if (n < 0 || n > max)
    fail(file.string(), std::string("\"") + key + "\": " + v->dump() + " is outside 0.." + std::to_string(max));
  return n;
}

void restore(const fs::path& cp, TrainableModel& model, AdamW& opt, State& st) {
  const fs::path file = cp / "trainer_state.json";
  const json ts = read_json_file(file);
  constexpr int64_t kMaxCounter = int64_t(1) << 40;  // far beyond any run, far from overflow
  st.step = saved_counter(ts, "global_step", kMaxCounter, file);
  st.cursor = saved_counter(ts, "micro_batches_consumed", kMaxCounter, file);
  const int64_t optimizer_steps = saved_counter(ts, "optimizer_steps", st.step, file);
  model.load_weights(cp);
  const SafetensorsFile f(cp / "optimizer.safetensors");
  for (const ParamInfo& p : model.params()) {
    if (!p.trainable) continue;
    for (auto [prefix, buf] : {std::pair{"exp_avg.", &opt.exp_avg()}, std::pair{"exp_avg_sq.", &opt.exp_avg_sq()}}) {
      const TensorInfo* t = f.find(prefix + p.name);
      if (!t || t->dtype != "F32" || t->nbytes != p.numel * 4) fail(f.path().string(), std::string("missing or wrong tensor ") + prefix + p.name);
      std::memcpy(buf->data() + p.grad_offset, t->data, t->nbytes);
    }
  }
  opt.set_steps(optimizer_steps);
}

// Every rank starts from the main rank's trainable weights, optimizer state and counters: the same
// start whatever each host's disk holds (only the main rank reads a checkpoint; a frozen base is
// each rank's own copy of the same files).
void share_start(World& world, TrainableModel& model, AdamW& opt, State& st) {
  if (world.size() == 1) return;
  world.broadcast(model.trainable_weights(), model.trainable_numel());
  world.broadcast(opt.exp_avg().data(), opt.exp_avg().size());
  world.broadcast(opt.exp_avg_sq().data(), opt.exp_avg_sq().size());
  int64_t counters[3] = {st.step, st.cursor, opt.steps()};
  world.broadcast(counters, 3);
  st.step = counters[0], st.cursor = counters[1];
  opt.set_steps(counters[2]);
}

// Keeps the metrics lines up to `step` (a resumed run rewrites what came after).
void trim_metrics(const fs::path& file, int64_t step) {
  if (!fs::exists(file)) return;
  std::ifstream in(file);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      if (json::parse(line).value("step", int64_t(0)) <= step) kept += line + "\n";
    } catch (const json::exception&) {
    }
  }
  in.close();
  write_file_atomic(file, kept);
}

std::string hms(double s) {
  char b[32];
  const long t = long(s);
  std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  return b;
}

}  // namespace

std::vector<fs::path> list_checkpoints(const fs::path& out) {
  std::vector<std::pair<int64_t, fs::path>> found;
  if (fs::exists(out))
    for (auto& e : fs::directory_iterator(out)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("checkpoint-", 0) != 0 || n.size() == 11 || n.size() > 11 + 18 || n.find_first_not_of("0123456789", 11) != std::string::npos) continue;
      if (fs::exists(e.path() / "trainer_state.json")) found.emplace_back(std::stoll(n.substr(11)), e.path());
    }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> paths;
  for (auto& [_, p] : found) paths.push_back(p);
  return paths;
}

TrainSummary train(const TrainConfig& c, TrainableModel& model, Objective& obj, bool resume) {
  // Every row allocates and frees the same activation buffers (~1 GB a row for a 1B model); glibc
  // would hand them back to the kernel and fault them in again, zeroed, for the next row (a third
  // of a LoRA step was page faults). Keep freed memory in the process instead. main's mmap
  // threshold (256 MB) keeps a row's logits (65 MB at 512 x 32000) in the heap too: lowered to 32 MB,
  // they were mapped and faulted in again for every row, 6% of an SFT step.
  mallopt(M_TRIM_THRESHOLD, INT32_MAX);
  World& world = World::get();
  world.set_timeout(c.ddp_timeout);
  const bool main = world.main();
  const size_t n_train = obj.train_size();
  if (n_train == 0) fail(c.dataset_path, "no training rows");
  const fs::path out = c.output_dir, source = c.model_name_or_path;
  if (main) fs::create_directories(out);
  // A step takes gradient_accumulation_steps micro-batches on each rank: ranks x accumulation
  // micro-batches of the one stream, so N ranks take the step one process takes with N times the
  // accumulation (transformers' global batch).
  const int64_t ranks = world.size(), per_step = c.gradient_accumulation_steps * ranks;
  const int64_t per_epoch = (int64_t(n_train) + c.per_device_train_batch_size - 1) / c.per_device_train_batch_size;
  const int64_t steps_per_epoch = (per_epoch + per_step - 1) / per_step;
  const int64_t total = c.max_steps > 0 ? c.max_steps : int64_t(std::ceil(c.num_train_epochs * double(steps_per_epoch)));
  const int64_t warmup = c.warmup_steps > 0 ? c.warmup_steps : int64_t(std::ceil(c.warmup_ratio * double(total)));
  AdamW opt(model);
  State st;
  if (resume && main) {
    const std::vector<fs::path> cps = list_checkpoints(out);
    if (cps.empty()) fail(out.string(), "--resume: no checkpoint-N directory to resume from");
    const fs::path cp = cps.back();
    restore(cp, model, opt, st);
    std::fprintf(stderr, "resuming from %s (step %lld of %lld)\n", cp.string().c_str(), (long long)st.step, (long long)total);
  }
  share_start(world, model, opt, st);
  const fs::path metrics = out / "metrics.jsonl";
  std::unique_ptr<std::ofstream> log;
  if (main) {
    if (resume) trim_metrics(metrics, st.step);
    else fs::remove(metrics);
    log = std::make_unique<std::ofstream>(metrics, std::ios::app);
    if (ranks > 1)
      std::fprintf(stderr, "data-parallel over %lld ranks (%s): a step is %lld x %lld micro-batches of %lld\n", (long long)ranks,
                   mpi_library().c_str(), (long long)ranks, (long long)c.gradient_accumulation_steps,
                   (long long)c.per_device_train_batch_size);
  }
  const AdamWConfig ac{c.learning_rate, c.adam_beta1, c.adam_beta2, c.adam_epsilon, c.weight_decay};
  const bool tty = main && isatty(STDERR_FILENO);
  const std::vector<std::string> names = obj.metric_names();
  TrainSummary sum;
  double logged_loss = 0, logged_tokens = 0, logged_seconds = 0, logged_count = 0, logged_allreduce = 0;
  std::map<std::string, double> logged_sums;
  int64_t logged_steps = 0;
  const auto t_start = std::chrono::steady_clock::now();
  const int64_t first_step = st.step;
  EpochCache epochs;
  const PassOptions pass{c.gradient_checkpointing, c.bf16 && gemm_bf16_available()};
  model.zero_grads();  // and each optimizer step releases them (zero for the next)
  while (st.step < total) {
    const auto t0 = std::chrono::steady_clock::now();
    // Every rank knows the whole step (the loss normaliser is the step's, not the rank's) and
    // runs micro-batches rank, rank + ranks, ...
    std::vector<std::pair<int64_t, std::vector<size_t>>> mine;  // (micro-batch number, examples)
    double weight = 0;
    for (int64_t j = 0; j < per_step; ++j) {
      std::vector<size_t> m = micro_batch(n_train, c, st.cursor + j, per_epoch, epochs);
      weight += obj.weight(m);
      if (j % ranks == world.rank()) mine.emplace_back(st.cursor + j, std::move(m));
    }
    ObjectiveStats step_stats;
    for (auto& [number, m] : mine) {
      // Dropout masks follow the micro-batch, not the rank or the process: resumed and
      // data-parallel runs draw the ones a single uninterrupted run draws.
      model.dropout_seed = c.seed * 0x9e3779b97f4a7c15ull ^ uint64_t(number);
      const ObjectiveStats s = obj.train_step(model, m, weight > 0 ? 1.0 / weight : 0.0, pass);
      step_stats.loss_sum += s.loss_sum;
      step_stats.tokens += s.tokens;
      step_stats.count += s.count;
      for (auto& [k, v] : s.sums) step_stats.sums[k] += v;
    }
    const auto t_reduce = std::chrono::steady_clock::now();
    if (ranks > 1) {
      world.sum(model.grads().data(), model.grads().size());
      step_stats = summed(world, step_stats, names);
    }
    logged_allreduce += std::chrono::duration<double>(std::chrono::steady_clock::now() - t_reduce).count();
    logged_count += step_stats.count;
    for (auto& [k, v] : step_stats.sums) logged_sums[k] += v;
    const double tokens = double(step_stats.tokens);
    const double norm = grad_norm(model.read_grads());
    const double lr = scheduled_lr(c.lr_scheduler_type, c.learning_rate, st.step, warmup, total);
    opt.step(model, ac, lr, clip_coefficient(norm, c.max_grad_norm), pass.bf16);
    ++st.step;
    st.cursor += per_step;
    const double loss = weight > 0 ? step_stats.loss_sum / weight : 0.0;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    logged_loss += loss, logged_tokens += tokens, logged_seconds += secs, ++logged_steps;
    sum.final_loss = loss;
    const double epoch = double(st.cursor) / double(per_epoch);
    if (main && (st.step % c.logging_steps == 0 || st.step == total)) {
      json m = {{"step", st.step},          {"epoch", epoch},
                {"loss", logged_loss / double(logged_steps)}, {"learning_rate", lr},
                {"grad_norm", norm},        {"tokens_per_second", logged_tokens / std::max(logged_seconds, 1e-9)}};
      for (auto& [k, v] : logged_sums) m[k] = logged_count > 0 ? v / logged_count : 0.0;
      // The step's time in the gradient allreduce, waiting for the slowest rank included.
      if (ranks > 1) m["allreduce_share"] = logged_allreduce / std::max(logged_seconds, 1e-9);
      *log << m.dump() << "\n" << std::flush;
      if (!tty)
        std::fprintf(stderr, "step %lld/%lld  loss %.4f  lr %.3g  grad_norm %.3f  %.0f tok/s\n", (long long)st.step,
                     (long long)total, logged_loss / double(logged_steps), lr, norm,
                     logged_tokens / std::max(logged_seconds, 1e-9));
    }
    if (st.step % c.logging_steps == 0 || st.step == total) {
      logged_loss = logged_tokens = logged_seconds = logged_count = logged_allreduce = 0;
      logged_sums.clear();
      logged_steps = 0;
    }
    if (tty) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      const double eta = elapsed / double(st.step - first_step) * double(total - st.step);
      const int width = 30, done = int(width * st.step / total);
      std::fprintf(stderr, "\r[%s%s] %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s ", std::string(size_t(done), '#').c_str(),
                   std::string(size_t(width - done), ' ').c_str(), (long long)st.step, (long long)total, loss, lr,
                   tokens / std::max(secs, 1e-9), hms(eta).c_str());
    }
    if (obj.eval_size() > 0 && c.eval_steps > 0 && st.step % c.eval_steps == 0)
      sum.eval_loss = evaluate(world, model, obj, c, st.step, epoch, log.get());
    if (main && c.save_steps > 0 && st.step % c.save_steps == 0 && st.step < total)
      save_checkpoint(out, model, opt, st, total, source, c.save_total_limit);
  }
  if (tty) std::fputc('\n', stderr);
  if (obj.eval_size() > 0)
    sum.eval_loss = evaluate(world, model, obj, c, st.step, double(st.cursor) / double(per_epoch), log.get());
  if (main) model.save(out, source);
  // The job ends when the model is on disk: a rank that returned earlier could not tell.
  world.barrier();
  sum.steps = st.step;
  return sum;
}

}  // namespace zephyr

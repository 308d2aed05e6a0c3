#include "generate/benchmark.h"

#include <algorithm>
#include <map>

#include <chrono>

#include "core/rng.h"
#include "model/inference.h"

namespace zephyr {

SpeedRun measure_speed(const Model& model, int64_t prompt_tokens, int64_t gen_tokens, int reps, uint64_t seed) {
  using clock = std::chrono::steady_clock;
  Rng rng(seed);
  const int64_t V = model.config.vocab_size;
  std::vector<float> logits(static_cast<size_t>(V));
  InferenceState state(model);
  SpeedRun run;
  // One untimed warm-up step touches every weight page and sizes the buffers.
  const int warm = 1;
  forward(model, &warm, 1, state, logits.data());
  for (int r = 0; r < reps; ++r) {
    if (prompt_tokens > 0) {
      std::vector<int> ids(static_cast<size_t>(prompt_tokens));
      for (auto& id : ids) id = int(rng.next() % uint64_t(V));
      state.truncate(0);
      const auto t0 = clock::now();
      forward(model, ids.data(), prompt_tokens, state, logits.data());
      run.prompt_tps.push_back(double(prompt_tokens) / std::chrono::duration<double>(clock::now() - t0).count());
    }
    if (gen_tokens > 0) {
      state.truncate(0);
      int id = int(rng.next() % uint64_t(V));
      const auto t0 = clock::now();
      for (int64_t i = 0; i < gen_tokens; ++i) {
        forward(model, &id, 1, state, logits.data());
        id = int(rng.next() % uint64_t(V));
      }
      run.gen_tps.push_back(double(gen_tokens) / std::chrono::duration<double>(clock::now() - t0).count());
    }
  }
  return run;
}

int64_t weight_bytes_per_token(const Model& model) {
  const ModelWeights& w = model.weights;
  int64_t bytes = int64_t(w.lm_head.nbytes()) + int64_t(w.embed.nbytes() / size_t(w.embed.rows));
  for (const auto& l : w.layers)
    bytes += int64_t(l.qkv.nbytes() + l.o.nbytes() + l.gate_up.nbytes() + l.down.nbytes());
  return bytes;
}

std::string weight_types(const Model& model) {
  std::map<std::string, size_t> bytes;
  auto add = [&](const Matrix& m) { bytes[dtype_name(m.dtype)] += m.nbytes(); };
  add(model.weights.lm_head);
  for (const auto& l : model.weights.layers) {
    for (const StackedMatrix* s : {&l.qkv, &l.gate_up})
      for (const Matrix& m : s->parts) add(m);
    add(l.o);
    add(l.down);
  }
  std::vector<std::pair<size_t, std::string>> order;
  for (auto& [name, b] : bytes) order.emplace_back(b, name);
  std::sort(order.rbegin(), order.rend());
  std::string out;
  for (auto& [b, name] : order) out += (out.empty() ? "" : "/") + name;
  return out;
}

}  // namespace zephyr

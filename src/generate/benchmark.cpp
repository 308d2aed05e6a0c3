#include "generate/benchmark.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>

#include "core/parallel.h"
#include "core/rng.h"
#include "kernels/matmul.h"
#include "kernels/quant/products.h"
#include "model/inference.h"

namespace zephyr {

namespace {

// Calls fn on every matrix a decode step streams, in the order of the forward pass.
template <class Fn>
void for_each_streamed_matrix(const Model& model, Fn&& fn) {
  for (const auto& l : model.weights.layers) {
    for (const Matrix& m : l.qkv.parts) fn(m);
    fn(l.o);
    for (const Matrix& m : l.gate_up.parts) fn(m);
    fn(l.down);
  }
  fn(model.weights.lm_head);
}

// XOR of every 8-byte word of [p, p + n): a plain sequential read, no arithmetic to hide behind.
uint64_t read_bytes(const uint8_t* p, size_t n) {
  uint64_t acc[8] = {};
  size_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int k = 0; k < 8; ++k) {
      uint64_t v;
      std::memcpy(&v, p + i + 8 * k, 8);
      acc[k] ^= v;
    }
  for (; i < n; ++i) acc[0] ^= p[i];
  return acc[0] ^ acc[1] ^ acc[2] ^ acc[3] ^ acc[4] ^ acc[5] ^ acc[6] ^ acc[7];
}

// Reads the bytes a decode step streams, matrix by matrix, each split across the threads as the
// GEMVs split it.
uint64_t read_weights(const Model& model) {
  std::atomic<uint64_t> sink{0};
  auto read = [&](const Matrix& m) {
    const auto* p = static_cast<const uint8_t*>(m.data);
    const size_t n = m.nbytes();
    parallel_for_balanced((n + 63) / 64, 256, [&](size_t b, size_t e) { sink ^= read_bytes(p + 64 * b, std::min(64 * e, n) - 64 * b); });
  };
  for_each_streamed_matrix(model, read);
  return sink;
}

}  // namespace

SpeedRun measure_speed(const Model& model, int64_t prompt_tokens, int64_t gen_tokens, int reps, bool paired_read,
                       uint64_t seed) {
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
      double read_s = 0;  // paired reads are not part of the tokens' time
      for (int64_t i = 0; i < gen_tokens; ++i) {
        const auto t1 = clock::now();
        forward(model, &id, 1, state, logits.data());
        id = int(rng.next() % uint64_t(V));
        if (!paired_read) continue;
        const auto t2 = clock::now();
        volatile uint64_t sink = read_weights(model);
        (void)sink;
        run.token_s.push_back(std::chrono::duration<double>(t2 - t1).count());
        run.read_s.push_back(std::chrono::duration<double>(clock::now() - t2).count());
        read_s += run.read_s.back();
      }
      run.gen_tps.push_back(double(gen_tokens) / (std::chrono::duration<double>(clock::now() - t0).count() - read_s));
    }
  }
  return run;
}

std::vector<double> measure_batched_decode(const Model& model, int64_t batch, int64_t gen_tokens, int reps, uint64_t seed) {
  using clock = std::chrono::steady_clock;
  Rng rng(seed);
  const int64_t V = model.config.vocab_size;
  std::vector<InferenceState> states;
  for (int64_t b = 0; b < batch; ++b) states.emplace_back(model);
  std::vector<int> ids(size_t(batch), 1);
  std::vector<float> logits(size_t(batch * V));
  std::vector<BatchSequence> seqs(static_cast<size_t>(batch));
  ForwardScratch scratch;
  const auto step = [&] {
    for (int64_t b = 0; b < batch; ++b) seqs[size_t(b)] = {&states[size_t(b)], &ids[size_t(b)], 1, logits.data() + b * V};
    forward_batch(model, seqs, scratch);
    for (int& id : ids) id = int(rng.next() % uint64_t(V));
  };
  step();  // untimed warm-up: touches every weight page, sizes the buffers
  std::vector<double> tps;
  for (int r = 0; r < reps; ++r) {
    for (auto& s : states) s.truncate(0);
    const auto t0 = clock::now();
    for (int64_t i = 0; i < gen_tokens; ++i) step();
    tps.push_back(double(batch * gen_tokens) / std::chrono::duration<double>(clock::now() - t0).count());
  }
  return tps;
}

int64_t weight_bytes_per_token(const Model& model) {
  const Matrix& embed = model.weights.embed;
  int64_t bytes = int64_t(embed.nbytes() / size_t(embed.rows));
  for_each_streamed_matrix(model, [&](const Matrix& m) { bytes += int64_t(m.nbytes()); });
  return bytes;
}

std::string weight_types(const Model& model) {
  std::map<std::string, size_t> bytes;
  for_each_streamed_matrix(model, [&](const Matrix& m) { bytes[dtype_name(m.dtype)] += m.nbytes(); });
  std::vector<std::pair<size_t, std::string>> order;
  for (auto& [name, b] : bytes) order.emplace_back(b, name);
  std::sort(order.rbegin(), order.rend());
  std::string out;
  for (auto& [b, name] : order) out += (out.empty() ? "" : "/") + name;
  return out;
}

const char* decode_isa(const Model& model) {
  return weight_types(model).find('Q') != std::string::npos ? quant_isa() : gemv_isa();
}

}  // namespace zephyr

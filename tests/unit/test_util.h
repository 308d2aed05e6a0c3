// Helpers the unit tests share.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "model/config.h"
#include "model/lora.h"

namespace zephyr::test {

// TMPDIR/zephyr-tests-PID/name, absent (callers that want it make it). ctest runs many zephyr_tests
// processes at once (one per test, and the whole binary at each ZEPHYR_CPU_ISA level), so each
// writes under a directory named by its pid, removed when it exits.
inline std::filesystem::path fresh_temp_path(const std::string& name) {
  struct Root {
    std::filesystem::path path = std::filesystem::temp_directory_path() / ("zephyr-tests-" + std::to_string(::getpid()));
    ~Root() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const Root root;
  const std::filesystem::path d = root.path / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(root.path);
  return d;
}

// The message of the zephyr::Error fn throws, or "(no error)".
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A peft-shaped adapter (in memory) with random A and B on the given module kinds of every layer,
// and on lm_head with `head`.
inline PeftAdapter random_adapter(const ModelConfig& c, int64_t r, const std::vector<std::string>& kinds, bool head, uint64_t seed) {
  PeftAdapter a;
  a.dir = "/tmp/adapter-" + std::to_string(seed);
  a.config.r = r;
  a.config.alpha = double(2 * r + 1);
  Rng rng(seed);
  auto pair = [&](int64_t out, int64_t in) {
    PeftAdapter::Pair p;
    p.in = in, p.out = out;
    for (int64_t i = 0; i < r * in; ++i) p.a.push_back(float(rng.uniform()) - 0.5f);
    for (int64_t i = 0; i < out * r; ++i) p.b.push_back(0.2f * (float(rng.uniform()) - 0.5f));
    return p;
  };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    for (const std::string& k : kinds) {
      const bool attn = k == "q_proj" || k == "k_proj" || k == "v_proj" || k == "o_proj";
      const int64_t out = k == "q_proj" ? c.q_dim() : k == "k_proj" || k == "v_proj" ? c.kv_dim() : k == "o_proj" || k == "down_proj" ? c.hidden_size : c.intermediate_size;
      const int64_t in = k == "o_proj" ? c.q_dim() : k == "down_proj" ? c.intermediate_size : c.hidden_size;
      a.modules["model.layers." + std::to_string(l) + (attn ? ".self_attn." : ".mlp.") + k] = pair(out, in);
    }
  if (head) a.modules["lm_head"] = pair(c.vocab_size, c.hidden_size);
  return a;
}

}  // namespace zephyr::test

#include "generate/generation_defaults.h"

namespace zephyr {

SamplingParams sampling_defaults(const json& g) {
  SamplingParams p;
  auto number = [&](const char* key, double& out) {
    if (g.contains(key) && g[key].is_number()) out = g[key].get<double>();
  };
  number("temperature", p.temperature);
  number("top_p", p.top_p);
  number("min_p", p.min_p);
  number("repetition_penalty", p.repetition_penalty);
  if (g.contains("top_k") && g["top_k"].is_number_integer()) p.top_k = g["top_k"].get<int64_t>();
  if (g.contains("do_sample") && g["do_sample"].is_boolean() && !g["do_sample"].get<bool>()) p.temperature = 0;
  return p;
}

}  // namespace zephyr

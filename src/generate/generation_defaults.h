// Sampling defaults a model ships in generation_config.json (do_sample, temperature, top_k,
// top_p, min_p, repetition_penalty), over zephyr's own defaults (0.7 / 50 / 0.95, the values
// of the Zephyr model card's example).
#pragma once
#include "generate/sampler.h"
#include "io/json_file.h"

namespace zephyr {

SamplingParams sampling_defaults(const json& generation_config);

}  // namespace zephyr

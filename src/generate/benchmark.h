// Prompt-processing and generation speed of a model, the way llama-bench measures it: pp = one
// forward over P random tokens from an empty cache, tg = N single-token steps from an empty cache.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/weights.h"

namespace zephyr {

struct SpeedRun {
  std::vector<double> prompt_tps, gen_tps;  // one value per repetition
  // With paired_read, per generated token: seconds of the token and of a plain read of the same
  // weights right after it. Their ratio is decode's share of the memory-bandwidth bound even on
  // a host whose bandwidth changes during the run (both see the same conditions).
  std::vector<double> token_s, read_s;
};

SpeedRun measure_speed(const Model& model, int64_t prompt_tokens, int64_t gen_tokens, int reps, bool paired_read = false,
                       uint64_t seed = 1);
// Generation with `batch` sequences decoded together (forward_batch, the server's step): per
// repetition the aggregate tokens/s of gen_tokens steps of one token per sequence.
std::vector<double> measure_batched_decode(const Model& model, int64_t batch, int64_t gen_tokens, int reps, uint64_t seed = 1);

// Bytes of weights one decode step reads: every matrix but the embedding (one row of it).
int64_t weight_bytes_per_token(const Model& model);
// The weight types of the streamed matrices, largest share first ("Q4_K/Q6_K", "BF16").
std::string weight_types(const Model& model);
// The instruction set the decode kernels of those types run on ("avx512-vnni", ...).
const char* decode_isa(const Model& model);

}  // namespace zephyr

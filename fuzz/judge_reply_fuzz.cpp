// libFuzzer target: any text a judge sends back (a model's reply, or an exec: judge's output) read
// by the AI-feedback scorer and the evaluation verdict readers. The first byte picks how many
// completions the feedback judgment must score (1-4); every reader must return a verdict or none
// — never crash, hang or hit undefined behaviour — and a verdict is always in range.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "eval/verdict.h"
#include "feedback/judgment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t n = size_t(data[0] % 4) + 1;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  zephyr::ordered_json scores;
  if (zephyr::parse_judgment(text, n, scores) && scores.size() != n) std::abort();
  for (bool json_only : {false, true}) {
    const double r = zephyr::single_rating(text, json_only);
    if (r != -1 && !(r >= 1 && r <= 10)) std::abort();
  }
  const std::string w = zephyr::pairwise_winner(text);
  if (!w.empty() && w != "A" && w != "B" && w != "tie") std::abort();
  (void)zephyr::bracketed_number(text);
  return 0;
}

// libFuzzer target: any HTTP body given to the server's request parser (chat and completions),
// response_format schemas included, must parse or raise ApiError — never crash, hang or hit
// undefined behaviour. A schema that compiles is then run: the body's bytes fed to its matcher,
// with the shortest completion and the cache key asked at every step (what token masks do).
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "generate/json_grammar.h"
#include "serve/openai.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  for (auto e : {zephyr::serve::Endpoint::Chat, zephyr::serve::Endpoint::Completions}) {
    try {
      const zephyr::serve::CompletionRequest r = zephyr::serve::parse_request(body, e, zephyr::SamplingParams{});
      if (r.options.structured) {
        zephyr::JsonMatcher m(*r.options.structured->grammar);
        for (size_t i = 0; i < size && i < 4096; ++i) {
          (void)m.min_completion();
          (void)m.key();
          if (!m.feed(data[i])) break;
          (void)m.complete();
          (void)m.finished();
        }
      }
    } catch (const zephyr::serve::ApiError&) {
    } catch (const zephyr::Error&) {
    }
  }
  return 0;
}

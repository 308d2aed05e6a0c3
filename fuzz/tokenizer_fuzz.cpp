// libFuzzer target: tokenizer.json (from any model repository) loaded, then used. Input:
// TOKENIZER_JSON, a NUL byte, then TEXT. A tokenizer that loads encodes TEXT (with and without
// special tokens) and decodes the ids it produced and ids read from TEXT's bytes, special tokens
// kept and skipped. Each step must succeed or raise Error — never crash, hang or hit undefined
// behaviour (regex backtracking is budgeted per text).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/json_file.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  if (nul == std::string::npos) return 0;
  try {
    const zephyr::json doc = zephyr::parse_json(std::string_view(input).substr(0, nul), "tokenizer.json");
    const zephyr::Tokenizer tok = zephyr::Tokenizer::from_json(doc, zephyr::json(), "tokenizer.json");
    const std::string text = input.substr(nul + 1);
    std::vector<int> ids;
    for (unsigned char c : text) ids.push_back(tok.vocab_size() > 0 ? c % (tok.vocab_size() + 2) : c);
    for (bool special : {false, true}) {
      try {
        const std::vector<int> got = tok.encode(text, special);
        (void)tok.decode(got, special);
      } catch (const zephyr::Error&) {
      }
      try {
        (void)tok.decode(ids, special);
      } catch (const zephyr::Error&) {
      }
    }
  } catch (const zephyr::Error&) {
  }
  return 0;
}

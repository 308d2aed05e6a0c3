// libFuzzer target: a chat template and the variables it is rendered with (tokenizer_config.json's
// chat_template and a request's messages both come from outside). Input: TEMPLATE, a NUL byte,
// then a JSON object of variables (without the NUL: the template alone, with one user message).
// Parsing and rendering must succeed or raise Error — never crash, hang or hit undefined
// behaviour; the work budget keeps every render short.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "io/json_file.h"
#include "tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  try {
    zephyr::ordered_json vars = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"add_generation_prompt", true}};
    if (nul != std::string::npos) {
      vars = zephyr::parse_ordered_json(std::string_view(input).substr(nul + 1), "variables");
      if (!vars.is_object()) return 0;
    }
    vars["bos_token"] = "<s>";
    vars["eos_token"] = "</s>";
    const zephyr::ChatTemplate tmpl(input.substr(0, nul));
    (void)tmpl.render(vars);
  } catch (const zephyr::Error&) {
  }
  return 0;
}

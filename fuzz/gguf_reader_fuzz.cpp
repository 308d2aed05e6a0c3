// libFuzzer target: any byte string given to the GGUF reader must parse or raise zephyr::Error —
// never crash, hang, read out of bounds (ASan) or hit undefined behaviour (UBSan). `make fuzz`
// builds it with clang and runs it briefly from a seed corpus of small real GGUF files.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/gguf.h"
#include "kernels/quant/formats.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    zephyr::GgufFile f(data, size, "fuzz");
    // Touch what a loader touches: typed metadata and every tensor's bytes.
    (void)f.get_string("general.architecture", "");
    (void)f.get_int("llama.block_count", 0);
    (void)f.get_float("llama.rope.freq_base", 0);
    (void)f.get_bool("tokenizer.ggml.add_bos_token", false);
    float row[256];
    for (const auto& t : f.tensors()) {
      const int64_t n = zephyr::block_elements(t.dtype);
      if (t.nbytes >= zephyr::row_bytes(t.dtype, n)) zephyr::dequantize_row(t.dtype, t.data, row, n);
    }
  } catch (const zephyr::Error&) {
  }
  return 0;
}

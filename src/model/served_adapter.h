// LoRA adapters kept beside the base weights instead of merged into them: the base keeps its type
// (a merged matrix would have to be fp32, or requantized with the adapter's change lost in the
// rounding), and one loaded base serves several adapters at once, each request picking one (the
// server's `model` name), as vLLM's and LoRAX's multi-adapter serving do. A row through an adapted
// layer gets base(x) + s·B·(A·x), the adapter's part in fp32 and row by row in a fixed order, so
// what a row gets does not depend on what else shares its batch.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/lora.h"
#include "model/weights.h"

namespace zephyr {

// One adapted module: y += s·B·(A·x). r == 0: the module is not adapted.
struct LoraDelta {
  int64_t r = 0, in = 0, out = 0;
  float scale = 0;
  std::vector<float> a;   // [r, in]
  std::vector<float> bt;  // B transposed, [r, out]: the update is r passes along contiguous rows
  explicit operator bool() const { return r > 0; }
};

// One module's part of a pass: each row's delta (null: none for that row) and where the module's
// columns start in that row of y.
struct LoraOutput {
  std::vector<const LoraDelta*> rows;
  int64_t offset = 0;
};

// y[row] (+ offset) += s·B·(A·x[row]) for every row and output. Rows with the same delta share
// one read of A and B; the work is split over A's rows and over fixed 256-column blocks of the
// output, so a row's numbers do not depend on the other rows or on the thread count.
void add_lora(const std::vector<LoraOutput>& outputs, const float* x, int64_t ldx, float* y, int64_t ldy);

struct ServedAdapter {
  struct Layer {
    LoraDelta q, k, v, o, gate, up, down;
  };
  std::string name;  // what requests name it by
  std::filesystem::path dir;
  std::vector<Layer> layers;
  LoraDelta lm_head;

  // The adapter's modules checked against the base's shapes (errors name its file). An adapter
  // that carries its own copy of a base weight (peft saves lm_head's with tied embeddings) is
  // accepted only when that copy equals the base's. The name is what requests call it.
  static ServedAdapter make(std::string name, const PeftAdapter& adapter, const Model& base);
};

}  // namespace zephyr

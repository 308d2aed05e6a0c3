#include "model/served_adapter.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/matmul.h"
#include "kernels/vec.h"

namespace zephyr {

void add_lora(const std::vector<LoraOutput>& outputs, const float* x, int64_t ldx, float* y, int64_t ldy) {
  constexpr int64_t kBlock = 256;  // output columns per task in the B pass
  struct Group {                   // the rows that share one delta
    const LoraDelta* d;
    int64_t offset;
    std::vector<int64_t> rows;
    size_t t;             // where its rows' A·x start in `t`
    size_t first_a, first_b;  // its first task in each pass
  };
  std::vector<Group> groups;
  size_t t_size = 0, a_tasks = 0, b_tasks = 0;
  for (const LoraOutput& o : outputs)
    for (size_t r = 0; r < o.rows.size(); ++r) {
      const LoraDelta* d = o.rows[r];
      if (!d || !*d) continue;
      auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& g) { return g.d == d && g.offset == o.offset; });
      if (g == groups.end()) g = groups.insert(groups.end(), Group{d, o.offset, {}, 0, 0, 0});
      g->rows.push_back(int64_t(r));
    }
  if (groups.empty()) return;
  for (Group& g : groups) {
    g.t = t_size, t_size += g.rows.size() * size_t(g.d->r);
    g.first_a = a_tasks, a_tasks += size_t(g.d->r);
    g.first_b = b_tasks, b_tasks += size_t((g.d->out + kBlock - 1) / kBlock);
  }
  std::vector<float> t(t_size);  // per group: [rows, r] of s·(A·x)
  // A pass: one task per row of A, for every row of the group.
  parallel_for(a_tasks, 1, [&](size_t t0, size_t t1) {
    for (size_t task = t0; task < t1; ++task) {
      const Group& g = *std::prev(std::upper_bound(groups.begin(), groups.end(), task, [](size_t v, const Group& g) { return v < g.first_a; }));
      const LoraDelta& d = *g.d;
      const int64_t k = int64_t(task - g.first_a);
      for (size_t i = 0; i < g.rows.size(); ++i)
        t[g.t + i * size_t(d.r) + size_t(k)] = d.scale * vec::dot(d.a.data() + k * d.in, x + g.rows[i] * ldx, d.in);
    }
  });
  // B pass: one task per block of output columns, every row of the group, k in order.
  parallel_for(b_tasks, 1, [&](size_t t0, size_t t1) {
    for (size_t task = t0; task < t1; ++task) {
      const Group& g = *std::prev(std::upper_bound(groups.begin(), groups.end(), task, [](size_t v, const Group& g) { return v < g.first_b; }));
      const LoraDelta& d = *g.d;
      const int64_t c0 = int64_t(task - g.first_b) * kBlock, n = std::min(kBlock, d.out - c0);
      for (size_t i = 0; i < g.rows.size(); ++i) {
        float* yr = y + g.rows[i] * ldy + g.offset + c0;
        for (int64_t k = 0; k < d.r; ++k) vec::axpy(yr, t[g.t + i * size_t(d.r) + size_t(k)], d.bt.data() + k * d.out + c0, n);
      }
    }
  });
}

namespace {

LoraDelta delta(const PeftAdapter& adapter, const PeftAdapter::Pair& p) {
  LoraDelta d;
  d.r = adapter.config.r;
  d.in = p.in;
  d.out = p.out;
  d.scale = adapter.config.scale();
  d.a = p.a;
  d.bt.resize(size_t(d.r * d.out));
  for (int64_t o = 0; o < d.out; ++o)
    for (int64_t k = 0; k < d.r; ++k) d.bt[size_t(k * d.out + o)] = p.b[size_t(o * d.r + k)];
  return d;
}

}  // namespace

ServedAdapter ServedAdapter::make(std::string name, const PeftAdapter& adapter, const Model& base) {
  const ModelConfig& c = base.config;
  const std::string file = (adapter.dir / "adapter_model.safetensors").string();
  ServedAdapter s;
  s.name = std::move(name);
  s.dir = adapter.dir;
  s.layers.resize(size_t(c.num_hidden_layers));
  // Every module the model has: where its delta goes and its weight's shape.
  struct Place {
    LoraDelta* slot;
    int64_t out, in;
  };
  std::map<std::string, Place> places = {{"lm_head", {&s.lm_head, c.vocab_size, c.hidden_size}}};
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    Layer& L = s.layers[size_t(l)];
    for (const auto& [kind, place] : std::initializer_list<std::pair<const char*, Place>>{
             {"q_proj", {&L.q, c.q_dim(), c.hidden_size}},
             {"k_proj", {&L.k, c.kv_dim(), c.hidden_size}},
             {"v_proj", {&L.v, c.kv_dim(), c.hidden_size}},
             {"o_proj", {&L.o, c.hidden_size, c.q_dim()}},
             {"gate_proj", {&L.gate, c.intermediate_size, c.hidden_size}},
             {"up_proj", {&L.up, c.intermediate_size, c.hidden_size}},
             {"down_proj", {&L.down, c.hidden_size, c.intermediate_size}}})
      places[layer_module(l, kind)] = place;
  }
  for (const auto& [module, p] : adapter.modules) {
    const auto it = places.find(module);
    if (it == places.end()) fail(file, "adapts '" + module + "', which this model does not have");
    const auto [slot, out, in] = it->second;
    if (p.out != out || p.in != in)
      fail(file, "module '" + module + "' adapts a [" + std::to_string(p.out) + ", " + std::to_string(p.in) + "] weight, the model's is [" +
                     std::to_string(out) + ", " + std::to_string(in) + "] (an adapter for another model?)");
    if (!p.base_weight.empty()) {
      // Only lm_head's copy is ever saved (tied embeddings); it must be the base's own weight.
      bool same = module == "lm_head" && p.base_weight.size() == size_t(out * in);
      std::vector<float> row(static_cast<size_t>(in));
      for (int64_t r = 0; same && r < out; ++r) {
        matrix_row(base.weights.lm_head, r, row.data());
        same = std::memcmp(row.data(), p.base_weight.data() + r * in, size_t(in) * sizeof(float)) == 0;
      }
      if (!same)
        fail(file, "carries its own base weight for '" + module +
                       "' that differs from this model's; merge it into the base first (zephyr merge)");
    }
    *slot = delta(adapter, p);
  }
  return s;
}

}  // namespace zephyr

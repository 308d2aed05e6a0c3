#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"
#include "core/target_clones.h"

namespace zephyr {

bool is_no_decay_parameter(const std::string& name) {
  return name.find("norm") != std::string::npos || name.find("bias") != std::string::npos;
}

AdamW::AdamW(const TrainableModel& model)
    : m_(model.trainable_numel(), 0.0f), v_(model.trainable_numel(), 0.0f) {
  for (const ParamInfo& p : model.params()) decay_.push_back(!is_no_decay_parameter(p.name));
}

namespace {

// One tensor's update, compiled for AVX-512 / AVX2 / baseline and picked at run time: two
// divisions and a square root per element made the scalar loop ~6% of an SFT step. The
// operations are the same in every version (this file is compiled without FMA contraction), so
// the result has the same bits. The gradient is first multiplied by the clipping coefficient in
// double, as clip_grad_norm_ scales it (a coefficient of 1 leaves it exact). The gradient is not
// cleared: the step releases it (TrainableModel::release_grads). kZeroGradient: elements whose
// gradient is known to be zero (embedding rows no token of the step touched), not read from memory
// — the same operations on a zero.
template <bool kZeroGradient>
ZEPHYR_CLONES_V4_V3 void adamw_update(
    float* __restrict w, const float* __restrict g, float* __restrict m, float* __restrict v, size_t n, double coef, float keep, float b1,
    float b2, float step_size, float sqrt_bc2, float eps) {
#pragma omp simd
  for (size_t j = 0; j < n; ++j) {
    const float gj = kZeroGradient ? 0.0f : float(double(g[j]) * coef);
    w[j] *= keep;
    m[j] = m[j] * b1 + gj * (1.0f - b1);
    v[j] = v[j] * b2 + gj * gj * (1.0f - b2);
    w[j] -= step_size * (m[j] / (std::sqrt(v[j]) / sqrt_bc2 + eps));
  }
}

// Σ x² in double over one chunk: element i goes to accumulator i % 16, each summed in order, and
// the 16 are added pairwise — a lane of 16 doubles, so every version has the same bits (no FMA
// contraction in this file). The scalar loop took 20 ms for 40M gradients on 2 threads; with 4
// accumulators each add waited for the one before: 56M gradients 5.0 ms, with 16 3.1 ms.
ZEPHYR_CLONES_V4_V3 double chunk_sum_squares(const float* __restrict x, size_t n) {
  double s[16] = {};
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
#pragma omp simd
    for (size_t k = 0; k < 16; ++k) s[k] += double(x[i + k]) * double(x[i + k]);
  for (; i < n; ++i) s[i % 16] += double(x[i]) * x[i];
  for (size_t w = 8; w > 0; w /= 2)
    for (size_t k = 0; k < w; ++k) s[k] += s[k + w];
  return s[0];
}

}  // namespace

void AdamW::step(TrainableModel& model, const AdamWConfig& c, double lr, double grad_coef, bool pack_bf16) {
  ++step_;
  const double bc1 = 1.0 - std::pow(c.beta1, double(step_)), bc2 = 1.0 - std::pow(c.beta2, double(step_));
  // The same float operations as torch's single-tensor AdamW: p *= 1 - lr*wd; m, v updated in
  // place; p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
  const float b1 = float(c.beta1), b2 = float(c.beta2), step_size = float(lr / bc1), sqrt_bc2 = float(std::sqrt(bc2));
  const float eps = float(c.eps);
  float* w = model.trainable_weights();  // (drops the packs of the weights before this update)
  const float* g = model.read_grads().data();
  std::shared_ptr<TrainableModel::Bf16Weights> packs;
  if (pack_bf16 && !model.lora() && !model.frozen_base()) {
    packs = std::make_shared<TrainableModel::Bf16Weights>();
    packs->w.resize(model.params().size());
    packs->wt.resize(model.params().size());
    for (size_t i : model.linears()) {
      const Matrix W = model.matrix(i);
      if (!model.params()[i].trainable || W.dtype != DType::F32) continue;
      // Read next by the next step's products, after the whole update has passed through the caches.
      packs->w[i] = Bf16Panels(W.rows, W.cols, Bf16Write::kStream);
      packs->wt[i] = Bf16Panels(W.cols, W.rows, Bf16Write::kStream);
    }
  }
  // One loop over all trainable elements (parameters lie back to back in the flat buffers), in
  // pieces shared out across threads: a loop per tensor was ~60 loops a step, each ending with one
  // thread waiting for the other (~20% of the optimizer's time). A packed weight's pieces are its
  // 16-row groups, each packed after its update. The update is elementwise, so any split gives
  // the same bits.
  struct Piece {
    size_t begin, end;  // elements, laid out as grads()
    float keep;
    size_t param = 0;  // with group >= 0: the weight whose group this is
    int64_t group = -1;
    bool zero_gradient = false;
  };
  std::vector<Piece> pieces;
  constexpr size_t kChunk = size_t(1) << 16;
  auto add_chunks = [&](size_t begin, size_t end, float keep, bool zero_gradient) {
    for (size_t b = begin; b < end; b += kChunk) pieces.push_back({b, std::min(end, b + kChunk), keep, 0, -1, zero_gradient});
  };
  // The embedding's rows that hold gradient, where they are tracked (the rest are zero).
  const std::vector<int32_t>* tracked = model.embedding_grad_nonzero_rows();
  std::vector<int32_t> embed_rows = tracked ? *tracked : std::vector<int32_t>();
  std::sort(embed_rows.begin(), embed_rows.end());
  for (size_t i = 0; i < model.params().size(); ++i) {
    const ParamInfo& p = model.params()[i];
    if (!p.trainable) continue;
    const float keep = decay_[i] ? float(1.0 - lr * c.weight_decay) : 1.0f;
    if (i == model.embed() && tracked) {
      const size_t cols = size_t(p.shape[1]), vocab = size_t(p.shape[0]);
      size_t row = 0;
      for (size_t k = 0; k <= embed_rows.size(); ++k) {  // the zero rows before each row with gradient, then it
        const size_t next = k < embed_rows.size() ? size_t(embed_rows[k]) : vocab;
        add_chunks(p.grad_offset + row * cols, p.grad_offset + next * cols, keep, true);
        if (k < embed_rows.size()) add_chunks(p.grad_offset + next * cols, p.grad_offset + (next + 1) * cols, keep, false);
        row = next + 1;
      }
      continue;
    }
    if (packs && packs->w[i].n()) {
      const size_t rows = size_t(p.shape[0]), cols = size_t(p.shape[1]);
      for (int64_t grp = 0; grp < pack_groups(packs->w[i]); ++grp) {
        const size_t r0 = std::min(rows, size_t(grp) * 16), r1 = std::min(rows, r0 + 16);  // past the rows: packed as zeros
        pieces.push_back({p.grad_offset + r0 * cols, p.grad_offset + r1 * cols, keep, i, grp});
      }
      continue;
    }
    add_chunks(p.grad_offset, p.grad_offset + p.numel, keep, false);
  }
  std::sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.begin < b.begin; });
  parallel_for_balanced(pieces.size(), 1, [&](size_t a, size_t b) {
    for (size_t k = a; k < b; ++k) {
      const Piece& s = pieces[k];
      if (s.begin < s.end)
        (s.zero_gradient ? adamw_update<true> : adamw_update<false>)(w + s.begin, g + s.begin, m_.data() + s.begin,
                                                                     v_.data() + s.begin, s.end - s.begin, grad_coef, s.keep,
                                                                     b1, b2, step_size, sqrt_bc2, eps);
      if (s.group >= 0) {
        const ParamInfo& p = model.params()[s.param];
        pack_group_with_transpose(w + p.grad_offset, p.shape[1], s.group, packs->w[s.param], packs->wt[s.param]);
      }
    }
  });
  if (packs) {
    fence_streams();  // the packs stream (gemm_bf16.h: pack_group_with_transpose)
    model.set_trained_bf16(std::move(packs));
  }
  model.release_grads();
}

double grad_norm(const Buffer& grads) {
  // Partial sums over fixed chunks (16 accumulators each), added in chunk order: threads share the
  // work, and the norm has the same bits for any thread count (resumed runs stay bit-identical).
  constexpr size_t C = size_t(1) << 16;
  const size_t n = grads.size(), chunks = (n + C - 1) / C;
  std::vector<double> part(chunks);
  parallel_for(chunks, 1, [&](size_t c0, size_t c1) {
    for (size_t c = c0; c < c1; ++c) part[c] = chunk_sum_squares(grads.data() + c * C, std::min(n, (c + 1) * C) - c * C);
  });
  double sq = 0;
  for (double p : part) sq += p;
  return std::sqrt(sq);
}

double clip_coefficient(double norm, double max_norm) {
  return max_norm > 0 ? std::min(1.0, max_norm / (norm + 1e-6)) : 1.0;
}

double scheduled_lr(const std::string& type, double base_lr, int64_t step, int64_t warmup, int64_t total) {
  if (type == "constant") return base_lr;
  if (step < warmup) return base_lr * double(step) / double(std::max<int64_t>(1, warmup));
  if (type == "constant_with_warmup") return base_lr;
  const double progress = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
  if (type == "linear") return base_lr * std::max(0.0, double(total - step) / double(std::max<int64_t>(1, total - warmup)));
  if (type == "cosine") return base_lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  fail("lr_scheduler_type", "unknown schedule '" + type + "'; expected linear, cosine, constant or constant_with_warmup");
}

}  // namespace zephyr

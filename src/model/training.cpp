#include "model/training.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "core/buffer.h"
#include "core/error.h"
#include "core/parallel.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/dropout.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_f32.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "kernels/vec.h"

namespace zephyr {

namespace {

// What the backward pass needs of one layer, for a chunk's tokens (below). In bf16 the linear layers'
// inputs are also kept packed as their weight gradients' operand (xᵀ, the GEMM's B): packed in the
// forward pass while each is in cache, once for the layers that share it (q, k, v; gate, up).
// Packed in the backward pass they came from memory, once per layer. (Then xn1, xn2 and act stay
// empty where only packs read them.)
struct LayerActs {
  Buffer x_in, xn1, q, k, v, attn, lse, x_mid, xn2, gate, up, act;
  Bf16Panels xn1_t, attn_t, xn2_t, act_t;
  std::map<size_t, Buffer> adapter_u;  // by parameter index: each adapter's x' Aᵀ, which its backward reads
  std::vector<AttentionProbs> probs;  // fp32: attention's probabilities, by row (bf16's backward pass recomputes them)
};

// A buffer of n floats that its producer overwrites whole (no zero fill), one that gradients are
// added into, and a copy. The fill and the copy run across threads: serial, the few MB of a layer's
// copies and zeroed gradients (~1% of the 56M bf16 step) left the other core idle.
void fresh(Buffer& v, int64_t n) { v.resize(size_t(n)); }
void zeros(Buffer& v, int64_t n) {
  fresh(v, n);
  parallel_for(size_t(n), 1 << 15, [&](size_t b, size_t e) { std::fill(v.data() + b, v.data() + e, 0.0f); });
}
void copy_into(Buffer& v, const float* x, int64_t n) {
  fresh(v, n);
  parallel_for(size_t(n), 1 << 15, [&](size_t b, size_t e) { std::copy(x + b, x + e, v.data() + b); });
}
void copy_into(Buffer& v, const Buffer& x) { copy_into(v, x.data(), int64_t(x.size())); }

// How one batch's matmuls run: fp32 BLAS, or with `bf16: true` bf16 inputs and fp32 accumulation
// (as PyTorch's bf16 autocast) while weights and gradients stay fp32. In bf16 each weight is
// packed once per batch (once for good when the base is frozen) for the forward product (W) and the
// input-gradient product (Wᵀ) instead of once per row and product; a frozen weight skips its
// gradient product. Adapters run in fp32.
struct Matmuls {
  bool bf16 = false;
  bool dropout = false;  // adapters' dropout: in training passes only
  uint64_t row_key = 0;  // the row being run (a chunk's layers: its first row), for its dropout masks
  std::shared_ptr<const TrainableModel::Bf16Weights> packed;

  Matmuls(const TrainableModel& m, bool use_bf16, bool backward)
      : bf16(use_bf16), dropout(backward && m.adapter_dropout && m.lora() && m.lora()->dropout > 0) {
    if (!bf16) return;
    // A frozen base (adapters) is packed once and kept; a trained one changes every step, and is
    // packed by the optimizer as it updates it (trained_bf16) or else here.
    const bool frozen = m.lora() != nullptr;
    if (frozen && m.frozen_bf16) {
      packed = m.frozen_bf16;
      return;
    }
    if (!frozen && m.trained_bf16()) {
      packed = m.trained_bf16();
      return;
    }
    auto p = std::make_shared<TrainableModel::Bf16Weights>();
    p->w.resize(m.params().size());
    p->wt.resize(m.params().size());
    for (size_t i : m.linears()) {
      const Matrix W = m.matrix(i);
      if (W.dtype != DType::F32) continue;  // a quantized base's: matmul_frozen
      const auto* data = static_cast<const float*>(W.data);
      if (backward || frozen) {  // both from one read of the weight
        p->w[i] = Bf16Panels(W.rows, W.cols);
        p->wt[i] = Bf16Panels(W.cols, W.rows);
        pack_with_transpose(data, W.cols, p->w[i], p->wt[i]);
      } else {
        p->w[i] = Bf16Panels(data, W.cols, false, W.rows, W.cols);
      }
    }
    packed = p;
    if (frozen) m.frozen_bf16 = packed;
  }
};

// The dropout mask of adapter i's input in the current row, keyed by (micro-batch, row, layer),
// so the backward pass and a checkpointed recomputation draw the same mask without storing it.
DropoutMask dropout_mask(const TrainableModel& m, const Matmuls& mm, size_t i) {
  return DropoutMask(splitmix64(m.dropout_seed ^ splitmix64(mm.row_key * 0x100000001b3ull + i)), m.lora()->dropout);
}

// An adapter's input: x itself, or x through dropout.
const float* adapter_input(const TrainableModel& m, const Matmuls& mm, size_t i, const float* x, int64_t n, int64_t cols,
                           Buffer& out) {
  if (!mm.dropout) return x;
  const DropoutMask mask = dropout_mask(m, mm, i);
  fresh(out, n * cols);
  parallel_for(size_t(n * cols), 1 << 14, [&](size_t b, size_t e) { dropout_apply(mask, b, e - b, x + b, out.data() + b); });
  return out.data();
}

// y[n, out] = x[n, in] · Wᵀ for the linear layer with parameter index i, plus its adapter's
// s · (x' Aᵀ) Bᵀ. xa: x packed by the caller (bf16; empty when it did not), shared with other
// layers that read it. keep_u: where to keep the adapter's u = x' Aᵀ for the backward pass.
void linear(const TrainableModel& m, const Matmuls& mm, size_t i, const float* x, int64_t n, float* y,
            const Bf16Rows& xa = Bf16Rows(), Buffer* keep_u = nullptr, Bf16Write write = Bf16Write::kCached) {
  const Matrix w = m.matrix(i);
  if (w.dtype != DType::F32) matmul_frozen(x, n, w, y, mm.bf16, xa.m() ? &xa : nullptr);
  else if (mm.bf16 && xa.m()) gemm_bf16(xa, mm.packed->w[i], y, w.rows, false, write);
  else if (mm.bf16) gemm_bf16(n, x, w.cols, false, mm.packed->w[i], y, w.rows, false, write);
  else if (gemm_f32_available())
    gemm_f32(n, w.rows, w.cols, x, w.cols, false, static_cast<const float*>(w.data), w.cols, false, y, w.rows, false);
  else matmul(x, n, w, y);
  const TrainableModel::Adapter* ad = m.adapter(i);
  if (!ad) return;
  // The scale rides on the second product, which adds into y (a product of its own and a pass
  // adding it took ~1% of a 1B model's LoRA step).
  Buffer xd, local_u;
  Buffer& u = keep_u ? *keep_u : local_u;
  fresh(u, n * m.params()[ad->a].shape[0]);
  const float* xin = adapter_input(m, mm, i, x, n, w.cols, xd);
  thin_matmul(xin, n, m.matrix(ad->a), u.data());
  thin_matmul(u.data(), n, m.matrix(ad->b), y, ad->scale, true);
}

// Whether linear_backward_packed can take layer i: bf16 over a trained fp32 weight, no adapter.
bool packed_backward(const TrainableModel& m, const Matmuls& mm, size_t i) {
  return mm.bf16 && m.matrix(i).dtype == DType::F32 && m.params()[i].trainable && !m.adapter(i);
}

// linear_backward's products for bf16 with dy packed by the caller as A (`a`) and transposed (`at`):
// dx (+)= dy · W and the weight's gradient += dyᵀ · x.
void linear_backward_packed(TrainableModel& m, const Matmuls& mm, size_t i, const Bf16Rows& a, const Bf16Rows& at, float* dx,
                            const Bf16Panels& xt, bool dx_fresh) {
  const Matrix w = m.matrix(i);
  gemm_bf16(a, mm.packed->wt[i], dx, w.cols, !dx_fresh);
  bool accumulate = true;
  float* dw = m.grad_to_store(i, &accumulate);
  gemm_bf16(at, xt, dw, w.cols, accumulate, Bf16Write::kStream);  // read next by the optimizer
}

// dx += dy · W (when dx is given), the weight's gradient += dyᵀ · x unless it is frozen, and the
// adapter's gradients: with u = x' Aᵀ, dB += s dyᵀ u, du = s dy B, dA += duᵀ x', dx += du A (masked).
// xt: xᵀ packed by the forward pass (bf16; empty when it did not). dx_fresh: dx holds no values
// yet, and dx = dy · W is written (the GEMMs store their tiles, SGEMM takes beta 0: no zero fill of
// dx, whose serial pass left the other core idle, nor a read of it). acts: the layer's kept values,
// whose u the adapter reads if the forward pass kept it (else it is made again: a product that
// reads x').
void linear_backward(TrainableModel& m, const Matmuls& mm, size_t i, const float* x, int64_t n, const float* dy, float* dx,
                     const Bf16Panels& xt = Bf16Panels(), bool dx_fresh = false, const LayerActs* acts = nullptr) {
  const Matrix w = m.matrix(i);
  const bool trains = m.params()[i].trainable;
  if (w.dtype != DType::F32) {
    if (dx) matmul_frozen_backward(dy, n, w, dx, mm.bf16, dx_fresh);
  } else if (!mm.bf16 && gemm_f32_available()) {
    const auto* wf = static_cast<const float*>(w.data);
    if (dx) gemm_f32(n, w.cols, w.rows, dy, w.rows, false, wf, w.cols, true, dx, w.cols, !dx_fresh);
    if (trains) gemm_f32(w.rows, w.cols, n, dy, w.rows, true, x, w.cols, true, m.grad(i), w.cols, true);
  } else if (!mm.bf16) {
    matmul_backward(x, n, w, dy, dx, m.grad(i), 1.0f, dx_fresh);
  } else {
    if (dx && trains && xt.n()) {  // dy packed once for both products
      Bf16Rows a(n, w.rows), at(w.rows, n);
      pack_with_transpose(dy, w.rows, a, at);
      linear_backward_packed(m, mm, i, a, at, dx, xt, dx_fresh);
    } else {
      if (dx) gemm_bf16(n, dy, w.rows, false, mm.packed->wt[i], dx, w.cols, !dx_fresh);
      bool accumulate = true;
      if (float* dw = trains ? m.grad_to_store(i, &accumulate) : nullptr) {
        if (xt.n()) gemm_bf16(w.rows, dy, w.rows, true, xt, dw, w.cols, accumulate);
        else gemm_bf16(w.rows, w.cols, n, dy, w.rows, true, x, w.cols, true, dw, w.cols, accumulate);
      }
    }
  }
  const TrainableModel::Adapter* ad = m.adapter(i);
  if (!ad) return;
  const int64_t r = m.params()[ad->a].shape[0];
  Buffer xd, made_u, du(size_t(n * r), 0.0f);
  const float* xin = adapter_input(m, mm, i, x, n, w.cols, xd);
  const auto kept = acts ? acts->adapter_u.find(i) : std::map<size_t, Buffer>::const_iterator();
  const float* u = nullptr;
  if (acts && kept != acts->adapter_u.end() && kept->second.size() == size_t(n * r)) {
    u = kept->second.data();
  } else {
    fresh(made_u, n * r);
    thin_matmul(xin, n, m.matrix(ad->a), made_u.data());
    u = made_u.data();
  }
  // s · dy as the products' alpha, not a scaled copy of dy.
  matmul_backward(u, n, m.matrix(ad->b), dy, du.data(), m.grad(ad->b), ad->scale);
  if (!dx || !mm.dropout) return matmul_backward(xin, n, m.matrix(ad->a), du.data(), dx, m.grad(ad->a));
  // Through the dropout: the gradient reaches the kept elements, scaled as they were.
  Buffer dxd;
  zeros(dxd, n * w.cols);
  matmul_backward(xin, n, m.matrix(ad->a), du.data(), dxd.data(), m.grad(ad->a));
  const DropoutMask mask = dropout_mask(m, mm, i);
  parallel_for(dxd.size(), 1 << 14, [&](size_t a, size_t b) { dropout_add_backward(mask, a, b - a, dxd.data() + a, dx + a); });
}

// A chunk of a batch: consecutive rows that run through each layer together, as one sequence of N
// tokens, and apart only in attention (a call per row) and the loss. A row of 511 tokens at a time,
// every product read its weight (and a weight gradient its accumulator) from memory again per row;
// the 56M bf16 step with its 4 rows as one chunk: +2.5% (8 alternated pairs, every one faster),
// and +1.8% against chunks of 2 rows. fp32 on BLAS runs its forward products a row at a time within
// the chunk (see kChunkActivations).
struct ChunkRow {
  int64_t row = 0;             // index in the batch
  int64_t start = 0, T = 0;    // its tokens in the chunk
  Buffer dlogits;              // the loss gradient w.r.t. its logits, for a unit scale; or, where
  Bf16Rows head_grad, head_grad_t;  // packed_head() holds, packed as the lm_head's two backward
  double nll = 0;                   // products read it (G and Gᵀ) by the loss, from cache
};

struct ChunkPass {
  int64_t N = 0;
  std::vector<ChunkRow> rows;
  std::vector<int> ids, targets;
  std::vector<int64_t> seg_start;  // each token's segment start within its row
  RopeTable rope;                  // every token's angles, for every layer's q and k and their gradients
  std::vector<LayerActs> acts;
  Buffer x, xnf, dxnf;
};

// One layer's forward for a chunk's tokens: x (the residual stream) is updated in place and
// everything the backward pass needs is kept in a.
void layer_forward(const TrainableModel& m, const TrainableModel::Layer& P, Buffer& x, LayerActs& a, const ChunkPass& cp,
                   const Matmuls& mm, bool for_backward) {
  const ModelConfig& c = m.config();
  const int64_t H = c.hidden_size, I = c.intermediate_size, qd = c.q_dim(), kvd = c.kv_dim(), T = cp.N;
  const AttentionShape shape{c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.sliding_window};
  // bf16: each input packed once for the products that read it (fp32 weights' and a quantized
  // base's panels alike) and, from the same read, kept packed for the weight gradients when the
  // backward pass follows and the weights train.
  const bool pack = mm.bf16, pack_t = pack && for_backward && m.params()[P.q].trainable;
  auto packed = [&](const Buffer& in, int64_t cols, Bf16Panels& t) {
    if (!pack) return Bf16Rows();
    if (!pack_t) return Bf16Rows(in.data(), cols, false, T, cols);
    Bf16Rows a(T, cols);
    t = Bf16Panels(cols, T, Bf16Write::kStream);  // read back in the backward pass
    pack_with_transpose(in.data(), cols, a, t);
    return a;
  };
  // x normed, packed for the products that read it: where only packs read it (no adapter, every
  // reader a trained fp32 weight), the norm's rows go straight into the packs 16 at a time and no
  // fp32 copy is kept (peak RSS of the 56M / 125M bf16 steps -65 / -144 MB; +0.4% in 10 alternated
  // pairs, 6 faster: within noise); else normed into xn and packed from there.
  auto normed = [&](size_t norm, Buffer& xn, Bf16Panels& t, std::initializer_list<size_t> readers) {
    if (pack_t && std::all_of(readers.begin(), readers.end(), [&](size_t i) { return packed_backward(m, mm, i); })) {
      xn = Buffer();
      Bf16Rows xa(T, H);
      t = Bf16Panels(H, T, Bf16Write::kStream);
      pack_produced(
          T, H,
          [&](int64_t r0, int64_t r1, float* const* out) {
            rmsnorm_rows(x.data() + r0 * H, m.weight(norm), r1 - r0, H, c.rms_norm_eps, out[0]);
          },
          {{&xa, nullptr, &t}});
      return xa;
    }
    fresh(xn, T * H);
    rmsnorm_forward(x.data(), m.weight(norm), T, H, c.rms_norm_eps, xn.data());
    return packed(xn, H, t);
  };
  copy_into(a.x_in, x);
  fresh(a.q, T * qd);
  fresh(a.k, T * kvd);
  fresh(a.v, T * kvd);
  const Bf16Rows xn1 = normed(P.input_norm, a.xn1, a.xn1_t, {P.q, P.k, P.v});
  // The adapters' u for the backward pass (a few rows of r values each).
  auto keep_u = [&](size_t i) { return for_backward && m.adapter(i) ? &a.adapter_u[i] : nullptr; };
  // Our GEMMs compute each row as they would alone; fp32 on SGEMM (no AVX-512) does not, and runs
  // a row of the chunk at a time (see kChunkActivations; models with adapters, whose thin products
  // are SGEMM's, never chunk in fp32, so no adapter reaches the loop).
  auto project = [&](size_t i, const float* in, float* out, const Bf16Rows& in_packed) {
    if (mm.bf16 || cp.rows.size() == 1 || gemm_f32_available()) return linear(m, mm, i, in, T, out, in_packed, keep_u(i));
    const int64_t cols = m.matrix(i).cols, rows = m.matrix(i).rows;
    for (const ChunkRow& r : cp.rows) linear(m, mm, i, in + r.start * cols, r.T, out + r.start * rows);
  };
  project(P.q, a.xn1.data(), a.q.data(), xn1);
  project(P.k, a.xn1.data(), a.k.data(), xn1);
  project(P.v, a.xn1.data(), a.v.data(), xn1);
  rope_apply(a.q.data(), T, c.num_attention_heads, cp.rope, false);
  rope_apply(a.k.data(), T, c.num_key_value_heads, cp.rope, false);
  fresh(a.attn, T * qd);
  fresh(a.lse, T * c.num_attention_heads);
  // fp32 keeps the probabilities for the backward pass; bf16 recomputes them there (a K = 64 product
  // and the exponentials) rather than write ~7 MB a layer and row out to memory and read it back:
  // the 56M step +0.5-1.6%, ~150 MB less peak RSS on the 125M one (fp32's SGEMM recomputation: -2.7%).
  const bool keep_probs = for_backward && !mm.bf16;
  if (keep_probs) a.probs.resize(cp.rows.size());
  for (size_t j = 0; j < cp.rows.size(); ++j) {
    const int64_t s = cp.rows[j].start;
    attention_train_forward(a.q.data() + s * qd, a.k.data() + s * kvd, a.v.data() + s * kvd, cp.rows[j].T, cp.seg_start.data() + s,
                            shape, mm.bf16, a.attn.data() + s * qd, a.lse.data() + s * c.num_attention_heads,
                            keep_probs ? &a.probs[j] : nullptr);
  }
  // The residual adds: into x by the product itself where it can (bf16 over an fp32 weight without
  // an adapter: the tile's sum plus x, the same value x + o gives), else through o, added across
  // threads (a serial pass over x left the other core idle).
  Buffer o;
  auto add_linear = [&](size_t i, const Buffer& in, const Bf16Rows& in_packed) {
    if (in_packed.m() && !m.adapter(i) && m.matrix(i).dtype == DType::F32)
      return gemm_bf16(in_packed, mm.packed->w[i], x.data(), H, true);
    fresh(o, T * H);
    project(i, in.data(), o.data(), in_packed);
    parallel_for(x.size(), 1 << 15, [&](size_t b, size_t e) {
      for (size_t j = b; j < e; ++j) x[j] += o[j];
    });
  };
  add_linear(P.o, a.attn, packed(a.attn, qd, a.attn_t));
  copy_into(a.x_mid, x);
  fresh(a.gate, T * I);
  fresh(a.up, T * I);
  const Bf16Rows xn2 = normed(P.post_norm, a.xn2, a.xn2_t, {P.gate, P.up});
  project(P.gate, a.xn2.data(), a.gate.data(), xn2);
  project(P.up, a.xn2.data(), a.up.data(), xn2);
  if (pack_t && packed_backward(m, mm, P.down)) {
    // act made 16 rows at a time and packed while they are in cache; the down product and its
    // weight gradient read only the packs, so no fp32 act is kept.
    Bf16Rows act(T, I);
    a.act_t = Bf16Panels(I, T, Bf16Write::kStream);
    pack_produced(
        T, I,
        [&](int64_t r0, int64_t r1, float* const* out) {
          swiglu_forward_serial(a.gate.data() + r0 * I, a.up.data() + r0 * I, (r1 - r0) * I, out[0]);
        },
        {{&act, nullptr, &a.act_t}});
    return add_linear(P.down, a.act, act);
  }
  fresh(a.act, T * I);
  swiglu_forward(a.gate.data(), a.up.data(), T * I, a.act.data());
  add_linear(P.down, a.act, packed(a.act, I, a.act_t));
}

// Whether the lm_head's gradient products take the loss's packed gradient: bf16 with a trained
// fp32 head and no adapters (those read dlogits in fp32).
bool packed_head(const TrainableModel& m, const Matmuls& mm) {
  return mm.bf16 && !m.lora() && m.matrix(m.lm_head()).dtype == DType::F32 && m.params()[m.lm_head()].trainable;
}

// A row's logits and loss, kept (keep) as its loss gradient for a unit scale. The head runs a row
// at a time: a chunk's logits at once would be ~260 MB at 2048 tokens and a 32000 vocabulary.
// Packing 65 MB of fp32 gradients read back from memory, twice, and scaling them took ~12 ms of a
// 56M model's ~400 ms row; in the loss the packing adds ~3 ms.
void head_forward(const TrainableModel& m, ChunkPass& cp, ChunkRow& row, bool keep, Matmuls mm) {
  mm.row_key = uint64_t(row.row);  // an adapter's dropout masks: the row's own
  const int64_t V = m.config().vocab_size, H = m.config().hidden_size, T = row.T;
  const int* targets = cp.targets.data() + row.start;
  fresh(row.dlogits, T * V);
  // The logits and the loss's packs of their gradient (65 and 2 x 33 MB for a 511-token row and a
  // 32000 vocabulary) are larger than the caches: written by streaming stores, not read first.
  linear(m, mm, m.lm_head(), cp.xnf.data() + row.start * H, T, row.dlogits.data(), Bf16Rows(), nullptr, Bf16Write::kStream);
  if (keep && packed_head(m, mm)) {
    row.head_grad = Bf16Rows(T, V, Bf16Write::kStream);
    row.head_grad_t = Bf16Rows(V, T, Bf16Write::kStream);
    // Each block of rows' gradients made beside the logits, not over them, and packed from that
    // one read: a 511-token row's loss with its packs 7.3-7.6 ms (microbenchmark, 2 threads; the
    // loss alone 4.3-4.5), packed in place 7.7-8.4, as a pack each over column stretches 8.8-9.2.
    std::vector<double> losses(static_cast<size_t>(T));
    pack_produced(
        T, V,
        [&](int64_t r0, int64_t r1, float* const* out) {
          cross_entropy_rows(row.dlogits.data() + r0 * V, r1 - r0, V, targets + r0, 1.0f, out[0], losses.data() + r0);
        },
        {{&row.head_grad, &row.head_grad_t}});
    for (double l : losses) row.nll += l;
    row.dlogits = Buffer();
  } else {
    row.nll = cross_entropy_forward_backward(row.dlogits.data(), T, V, targets, 1.0f, row.dlogits.data());
    if (!keep) row.dlogits = Buffer();
  }
}

// Adds scale * the row's lm_head gradients and writes its rows of dxnf; frees what the loss kept.
void head_backward(TrainableModel& m, ChunkPass& cp, ChunkRow& row, float scale, Matmuls mm) {
  mm.row_key = uint64_t(row.row);
  const int64_t H = m.config().hidden_size, T = row.T;
  const float* xnf = cp.xnf.data() + row.start * H;
  float* dxnf = cp.dxnf.data() + row.start * H;
  if (row.head_grad.m()) {
    // The scale goes on the small operands: dxnf = scale · G W, dW += Gᵀ (scale · xnf).
    gemm_bf16(row.head_grad, mm.packed->wt[m.lm_head()], dxnf, H, false);
    Buffer xs;
    copy_into(xs, xnf, T * H);
    if (scale != 1.0f) {
      vec::scale(dxnf, scale, T * H);
      vec::scale(xs.data(), scale, T * H);
    }
    bool accumulate = true;
    float* dw = m.grad_to_store(m.lm_head(), &accumulate);
    gemm_bf16(row.head_grad_t, Bf16Panels(xs.data(), H, true, H, T), dw, H, accumulate, Bf16Write::kStream);
  } else {
    if (scale != 1.0f)
      parallel_for(row.dlogits.size(), 1 << 16, [&](size_t b, size_t e) { vec::scale(row.dlogits.data() + b, scale, int64_t(e - b)); });
    linear_backward(m, mm, m.lm_head(), xnf, T, row.dlogits.data(), dxnf);
  }
  row.dlogits = Buffer();
  row.head_grad = Bf16Rows();
  row.head_grad_t = Bf16Rows();
}

// A chunk's forward pass, kept (keep) for its backward pass: the layer activations (or only each
// layer's input when checkpointing), the final hidden states and each row's loss gradient. With
// head_scale (the rows' gradient scale, known before the loss), each row's lm_head backward runs
// right after its loss, so only one row's loss gradient is alive at a time.
void chunk_forward(TrainableModel& m, ChunkPass& cp, bool keep, bool checkpointing, Matmuls mm, const float* head_scale) {
  mm.row_key = uint64_t(cp.rows.front().row);
  const ModelConfig& c = m.config();
  const int64_t H = c.hidden_size, N = cp.N;
  const size_t L = m.layers().size();
  cp.acts.resize(L);
  fresh(cp.x, N * H);
  const Matrix embed = m.matrix(m.embed());
  for (int64_t t = 0; t < N; ++t) matrix_row(embed, cp.ids[size_t(t)], cp.x.data() + t * H);
  for (size_t l = 0; l < L; ++l) {
    layer_forward(m, m.layers()[l], cp.x, cp.acts[l], cp, mm, keep && !checkpointing);
    if (checkpointing || !keep) {
      Buffer input = std::move(cp.acts[l].x_in);
      cp.acts[l] = LayerActs();
      if (keep) cp.acts[l].x_in = std::move(input);
    }
  }
  fresh(cp.xnf, N * H);
  rmsnorm_forward(cp.x.data(), m.weight(m.final_norm()), N, H, c.rms_norm_eps, cp.xnf.data());
  if (keep) zeros(cp.dxnf, N * H);
  for (ChunkRow& row : cp.rows) {
    head_forward(m, cp, row, keep, mm);
    if (keep && head_scale) head_backward(m, cp, row, *head_scale, mm);
  }
}

// Adds d(nll)/d(params) for a chunk kept by chunk_forward, each row's scaled by row_scales (or
// already taken by its lm_head backward), and frees it.
void chunk_backward(TrainableModel& m, ChunkPass& cp, const std::vector<float>* row_scales, bool checkpointing, Matmuls mm) {
  mm.row_key = uint64_t(cp.rows.front().row);  // as chunk_forward's (a recomputed layer draws the same masks)
  const ModelConfig& c = m.config();
  const int64_t H = c.hidden_size, I = c.intermediate_size, qd = c.q_dim(), kvd = c.kv_dim(), T = cp.N;
  const AttentionShape shape{c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.sliding_window};
  const size_t L = m.layers().size();
  if (row_scales)
    for (ChunkRow& row : cp.rows) head_backward(m, cp, row, (*row_scales)[size_t(row.row)], mm);
  // dx: gradient w.r.t. the residual stream.
  Buffer dx;
  zeros(dx, T * H);
  rmsnorm_backward(cp.x.data(), m.weight(m.final_norm()), cp.dxnf.data(), T, H, c.rms_norm_eps, dx.data(), m.grad(m.final_norm()));
  Buffer dact, dgate, dup, dxn, dattn, dq, dk, dv;
  for (size_t l = L; l-- > 0;) {
    const auto& P = m.layers()[l];
    LayerActs& a = cp.acts[l];
    if (checkpointing) {
      Buffer x_l;
      copy_into(x_l, a.x_in);
      layer_forward(m, P, x_l, a, cp, mm, true);
    }
    // MLP: x_out = x_mid + down(swiglu(gate(xn2), up(xn2))).
    fresh(dact, T * I);
    linear_backward(m, mm, P.down, a.act.data(), T, dx.data(), dact.data(), a.act_t, true, &a);
    fresh(dxn, T * H);
    if (packed_backward(m, mm, P.gate) && packed_backward(m, mm, P.up) && a.xn2_t.n()) {
      // dgate and dup made 16 rows at a time and packed for both their products while in cache.
      Bf16Rows g(T, I), gt(I, T), u(T, I), ut(I, T);
      pack_produced(
          T, I,
          [&](int64_t r0, int64_t r1, float* const* out) {
            swiglu_backward_serial(a.gate.data() + r0 * I, a.up.data() + r0 * I, dact.data() + r0 * I, (r1 - r0) * I, out[0],
                                   out[1]);
          },
          {{&g, &gt}, {&u, &ut}});
      linear_backward_packed(m, mm, P.gate, g, gt, dxn.data(), a.xn2_t, true);
      linear_backward_packed(m, mm, P.up, u, ut, dxn.data(), a.xn2_t, false);
    } else {
      fresh(dgate, T * I);
      fresh(dup, T * I);
      swiglu_backward(a.gate.data(), a.up.data(), dact.data(), T * I, dgate.data(), dup.data());
      linear_backward(m, mm, P.gate, a.xn2.data(), T, dgate.data(), dxn.data(), a.xn2_t, true, &a);
      linear_backward(m, mm, P.up, a.xn2.data(), T, dup.data(), dxn.data(), a.xn2_t, false, &a);
    }
    rmsnorm_backward(a.x_mid.data(), m.weight(P.post_norm), dxn.data(), T, H, c.rms_norm_eps, dx.data(),
                     m.grad(P.post_norm));
    // Attention: x_mid = x_in + o(attention(rope(q(xn1)), rope(k(xn1)), v(xn1))).
    fresh(dattn, T * qd);
    linear_backward(m, mm, P.o, a.attn.data(), T, dx.data(), dattn.data(), a.attn_t, true, &a);
    zeros(dq, T * qd);
    zeros(dk, T * kvd);
    zeros(dv, T * kvd);
    for (size_t j = 0; j < cp.rows.size(); ++j) {
      const int64_t s = cp.rows[j].start;
      attention_backward(a.q.data() + s * qd, a.k.data() + s * kvd, a.v.data() + s * kvd, a.attn.data() + s * qd,
                         dattn.data() + s * qd, a.lse.data() + s * c.num_attention_heads, cp.rows[j].T, cp.seg_start.data() + s,
                         shape, mm.bf16, dq.data() + s * qd, dk.data() + s * kvd, dv.data() + s * kvd,
                         a.probs.empty() ? nullptr : &a.probs[j]);
    }
    rope_apply(dq.data(), T, c.num_attention_heads, cp.rope, true);
    rope_apply(dk.data(), T, c.num_key_value_heads, cp.rope, true);
    // q and k were rotated in place; the projections saw xn1, which is what their weights need.
    fresh(dxn, T * H);
    linear_backward(m, mm, P.q, a.xn1.data(), T, dq.data(), dxn.data(), a.xn1_t, true, &a);
    linear_backward(m, mm, P.k, a.xn1.data(), T, dk.data(), dxn.data(), a.xn1_t, false, &a);
    linear_backward(m, mm, P.v, a.xn1.data(), T, dv.data(), dxn.data(), a.xn1_t, false, &a);
    rmsnorm_backward(a.x_in.data(), m.weight(P.input_norm), dxn.data(), T, H, c.rms_norm_eps, dx.data(),
                     m.grad(P.input_norm));
    a = LayerActs();  // free as we go
  }
  // Threads take columns, so a token seen twice adds its rows in order on one thread (the same
  // bits); a serial loop over rows scattered through the embedding left the other core idle.
  const int* ids = cp.ids.data();
  if (float* dembed = m.embedding_grad_rows(ids, T))
    parallel_for(size_t(H), 16, [&](size_t j0, size_t j1) {
      for (int64_t t = 0; t < T; ++t)
        for (size_t j = j0; j < j1; ++j) dembed[size_t(ids[t] * H) + j] += dx[size_t(t * H) + j];
    });
  cp = ChunkPass();
}

}  // namespace

int64_t count_targets(const TokenBatch& b) {
  int64_t n = 0;
  for (int64_t r = 0; r < b.rows; ++r)
    for (int64_t t = 1; t < b.seq; ++t) n += b.labels[size_t(r * b.seq + t)] != kIgnoreIndex;
  return n;
}

namespace {

// Tokens times hidden size a chunk holds at most (past one row): 2048 tokens at hidden 768. The
// products' gain saturated near 2048 rows in a microbenchmark (4 x 511 -> 8 x 511: +1%) while the
// activations kept grow with the chunk; a 1B model's rows run one at a time. A row's log-probs
// must not depend on the rows beside it (DPO's reference log-probs, taken in evaluation batches,
// equal the policy's at step 0: loss log 2 exactly). Our GEMMs (bf16, fp32) compute every row the
// same way in any product; OpenBLAS's SGEMM does not promise it (its kernels choose their path by
// the product's size, and below 4 rows matmul takes the GEMV), so fp32 on SGEMM (CPUs without
// AVX-512) runs each forward product a row at a time and only the backward products, which make
// gradients, over the chunk: with SGEMM for all products that took the 56M fp32 step +2.4%
// (OpenBLAS's Haswell kernels, this host's choice) and +3.3% (its SkylakeX kernels), 4 alternated
// pairs each; all of them over the chunk measured +8% with SkylakeX. fp32 with adapters runs rows
// alone (their kept u and dropout masks are a row's).
constexpr int64_t kChunkActivations = int64_t(2048) * 768;

// Checks a batch and runs its rows in chunks. With `deferred`, every chunk's forward pass is kept
// first and the row scales come from the callback given the per-row losses; otherwise each chunk
// runs forward and backward at once (one chunk of activations alive at a time).
LossSum run_batch(TrainableModel& m, const TokenBatch& b, float grad_scale, bool backward, bool checkpointing, bool bf16,
                  const RowScalesFromLosses* deferred) {
  const ModelConfig& c = m.config();
  const int64_t V = c.vocab_size;
  if (int64_t(b.input_ids.size()) != b.rows * b.seq || int64_t(b.labels.size()) != b.rows * b.seq)
    fail("batch", "input_ids and labels must both hold rows x seq entries");
  LossSum total;
  total.row_nll.assign(size_t(b.rows), 0.0);
  total.row_targets.assign(size_t(b.rows), 0);
  const bool keep = backward && (deferred || grad_scale != 0.0f);
  std::vector<ChunkPass> kept;
  Matmuls mm(m, bf16, backward);
  ChunkPass cp;
  std::vector<int64_t> positions;
  // Runs the chunk gathered so far.
  auto run_chunk = [&]() {
    if (cp.rows.empty()) return;
    cp.rope = rope_table(positions.data(), cp.N, c.head_dim, c.rope_theta);
    positions.clear();
    chunk_forward(m, cp, keep, checkpointing, mm, keep && !deferred ? &grad_scale : nullptr);
    for (ChunkRow& row : cp.rows) {
      int64_t n = 0;
      for (int64_t t = row.start; t < row.start + row.T; ++t) n += cp.targets[size_t(t)] != kIgnoreIndex;
      total.nll += row.nll;
      total.targets += n;
      total.row_nll[size_t(row.row)] = row.nll;
      total.row_targets[size_t(row.row)] = n;
    }
    if (deferred) kept.push_back(std::move(cp));
    else if (keep) chunk_backward(m, cp, nullptr, checkpointing, mm);
    cp = ChunkPass();
  };
  for (int64_t r = 0; r < b.rows; ++r) {
    const int* ids = b.input_ids.data() + r * b.seq;
    const int* labels = b.labels.data() + r * b.seq;
    for (int64_t t = 0; t < b.seq; ++t) {
      if (ids[t] < 0 || ids[t] >= V)
        fail("batch", "row " + std::to_string(r) + ": token id " + std::to_string(ids[t]) + " is outside the vocabulary");
      if (labels[t] != kIgnoreIndex && (labels[t] < 0 || labels[t] >= V))
        fail("batch", "row " + std::to_string(r) + ": label " + std::to_string(labels[t]) + " is outside the vocabulary");
    }
    // Tokens after the last labelled position cannot affect the loss (attention is causal).
    int64_t T = 0;
    for (int64_t t = 1; t < b.seq; ++t)
      if (labels[t] != kIgnoreIndex) T = t;
    if (T == 0) continue;
    if (!cp.rows.empty() && ((!bf16 && m.lora()) || (cp.N + T) * c.hidden_size > kChunkActivations)) run_chunk();
    ChunkRow row;
    row.row = r;
    row.start = cp.N;
    row.T = T;
    for (int64_t t = 0; t < T; ++t) {
      cp.ids.push_back(ids[t]);
      cp.targets.push_back(labels[t + 1]);
      positions.push_back(b.positions.empty() ? t : b.positions[size_t(r * b.seq + t)]);
      cp.seg_start.push_back(b.seg_start.empty() ? 0 : b.seg_start[size_t(r * b.seq + t)]);
    }
    cp.N += T;
    cp.rows.push_back(std::move(row));
  }
  run_chunk();
  if (deferred) {
    const std::vector<float> scales = (*deferred)(total);
    if (int64_t(scales.size()) != b.rows) fail("batch", "one row scale per row expected");
    std::vector<float> row_scales(scales.size());
    for (size_t r = 0; r < scales.size(); ++r) row_scales[r] = grad_scale * scales[r];
    for (ChunkPass& k : kept) chunk_backward(m, k, &row_scales, checkpointing, mm);
  }
  return total;
}

}  // namespace

LossSum forward_backward(TrainableModel& m, const TokenBatch& b, float grad_scale, bool checkpointing, bool bf16) {
  return run_batch(m, b, grad_scale, true, checkpointing, bf16, nullptr);
}

LossSum forward_backward_deferred(TrainableModel& m, const TokenBatch& b, float grad_scale, bool checkpointing, bool bf16,
                                  const RowScalesFromLosses& scales) {
  return run_batch(m, b, grad_scale, true, checkpointing, bf16, &scales);
}

LossSum forward_loss(const TrainableModel& m, const TokenBatch& b, bool bf16) {
  // run_batch only writes gradients when asked to.
  return run_batch(const_cast<TrainableModel&>(m), b, 0.0f, false, false, bf16, nullptr);
}

}  // namespace zephyr

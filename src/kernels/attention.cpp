#include "kernels/attention.h"

#include <cblas.h>
// GCC 12 warns inside its own AVX-512 headers (unpack, reduce) about a variable it initialises
// itself; a known false positive (as in matmul.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/cpu_isa.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/target_clones.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_f32.h"
#include "kernels/vec.h"

namespace zephyr {

namespace {

// The first key position t may see: its packed segment's start (0 without packing) or the
// window's start, whichever is later.
int64_t first_key(int64_t t, const int64_t* seg_start, int64_t window) {
  int64_t lo = seg_start ? seg_start[t] : 0;
  if (window > 0 && t - window + 1 > lo) lo = t - window + 1;
  return lo;
}

constexpr int64_t kBlock = 64;  // queries per GEMM

// How attention's products run: the bf16-input GEMM the linear layers use with `bf16: true` (as bf16
// autocast runs attention's matmuls); in fp32 training gemm_f32 where the CPU has AVX-512 (it ran
// the 56M fp32 step 4.9% faster than OpenBLAS's Haswell kernels, 1.6% than its SkylakeX ones);
// else, and for inference's prompts, SGEMM.
enum class Products { kSgemm, kF32, kBf16 };

Products training_products(bool bf16) {
  return bf16 ? Products::kBf16 : gemm_f32_available() ? Products::kF32 : Products::kSgemm;
}

// C[M,N] (+)= A·Bᵀ with A given as [M,K] ([K,M] when ta) and B as [N,K] ([K,N] when tb): the
// products that read no packed keys (bf16's all do).
void gemm(Products p, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, bool ta, const float* b, int64_t ldb, bool tb,
          float* c, int64_t ldc, bool accumulate) {
  if (p == Products::kF32) return gemm_f32(M, N, K, a, lda, ta, b, ldb, tb, c, ldc, accumulate);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasNoTrans : CblasTrans, int(M), int(N), int(K), 1.0f, a,
              int(lda), b, int(ldb), accumulate ? 1.0f : 0.0f, c, int(ldc));
}

// Training's products read each KV head's keys and values packed once (for the scores and dP:
// [keys, head_dim]; for the output and dQ: transposed) instead of every query block packing the
// keys it sees again, for each query head of the group (~9x the packing at 512 tokens; packing's
// share of bf16 attention's samples 15% -> 9%). A block then sees keys from a multiple of 32 on (a
// panel's start); the ones before its first visible key get probability 0 like any other, which
// adds exact zeros to every sum. Panels: Bf16Panels or F32Panels.
template <class Panels>
struct PackedKv {
  std::vector<Panels> k, v, kt, vt;  // by KV head; only those a pass uses are filled

  PackedKv(const float* key, const float* value, int64_t n, const AttentionShape& s, bool keys, bool values, bool keys_t,
           bool values_t) {
    const int64_t hd = s.head_dim, ld = s.kv_heads * hd;
    for (int64_t g = 0; g < s.kv_heads; ++g) {
      if (keys) k.emplace_back(key + g * hd, ld, false, n, hd);
      if (values) v.emplace_back(value + g * hd, ld, false, n, hd);
      if (keys_t) kt.emplace_back(key + g * hd, ld, true, hd, n);
      if (values_t) vt.emplace_back(value + g * hd, ld, true, hd, n);
    }
  }
};

// The packs a training pass uses: bf16's or fp32's (gemm_f32) — none for SGEMM.
struct KvPacks {
  std::unique_ptr<PackedKv<Bf16Panels>> bf16;
  std::unique_ptr<PackedKv<F32Panels>> f32;

  KvPacks(Products p, const float* key, const float* value, int64_t n, const AttentionShape& s, bool keys, bool values,
          bool keys_t, bool values_t) {
    if (p == Products::kBf16) bf16 = std::make_unique<PackedKv<Bf16Panels>>(key, value, n, s, keys, values, keys_t, values_t);
    if (p == Products::kF32) f32 = std::make_unique<PackedKv<F32Panels>>(key, value, n, s, keys, values, keys_t, values_t);
  }
};

constexpr int64_t kPanelKeys = 32;  // keys per packed panel

// rows [klo, klo + L) of a [keys, head_dim] pack; or, of a transposed one, k [klo, klo + L)
template <class Panels>
auto keys_of(const Panels& p, int64_t klo, int64_t L) {
  return p.view(klo, L, 0, p.k());
}
template <class Panels>
auto keys_of_t(const Panels& p, int64_t klo, int64_t L) {
  return p.view(0, p.n(), klo, L);
}

// Probabilities of query head h for queries [t0, t1) (positions pos0 + t) against keys [klo,
// pos0 + t1) (the keys the block can see: first_key is non-decreasing), one GEMM for the scores; P
// is [t1 - t0, pos0 + t1 - klo] and the keys a query may not see get probability 0. Without lse
// each row's log-sum-exp is computed (and stored at lse_out when given); with it (backward) the
// forward's is reused. seg_start is given only in training, where pos0 = 0. kp: the packed keys
// (training; none for SGEMM), from which the scores' GEMM reads.
void block_probs(Products products, const float* q, const float* k, const KvLayout& kv, int64_t t0, int64_t t1, int64_t pos0,
                 int64_t klo, int64_t h, int64_t g, const int64_t* seg_start, const AttentionShape& s, const float* lse,
                 float* lse_out, float* P, const KvPacks& kp) {
  const int64_t hd = s.head_dim, ldq = s.heads * hd, L = pos0 + t1 - klo;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  if (kp.bf16)
    gemm_bf16(Bf16Rows(q + (t0 * s.heads + h) * hd, ldq, false, t1 - t0, hd), keys_of(kp.bf16->k[size_t(g)], klo, L), P, L,
              false, {Bf16Causal::kColumns, pos0 + t0 - klo});
  else if (kp.f32)
    gemm_f32(t1 - t0, q + (t0 * s.heads + h) * hd, ldq, false, keys_of(kp.f32->k[size_t(g)], klo, L), P, L, false);
  else
    gemm(products, t1 - t0, L, hd, q + (t0 * s.heads + h) * hd, ldq, false, k + klo * kv.row + g * kv.head, kv.row, false, P, L,
         false);
  for (int64_t t = t0; t < t1; ++t) {
    float* row = P + (t - t0) * L;
    const int64_t lo = first_key(pos0 + t, seg_start, s.window) - klo, hi = pos0 + t - klo;  // visible: [lo, hi]
    if (lse) {
      vec::exp_scaled(row + lo, scale, lse[t * s.heads + h], row + lo, hi - lo + 1);  // lse >= every scaled score of the row
    } else {
      const float row_lse = vec::softmax(row + lo, scale, hi - lo + 1);
      if (lse_out) lse_out[t * s.heads + h] = row_lse;
    }
    std::fill(row, row + lo, 0.0f);
    std::fill(row + hi + 1, row + L, 0.0f);
  }
}

// The first key that training's block of queries from t0 computes scores for: its first visible
// one, from a packed panel's start where the keys are packed.
int64_t block_first_key(int64_t t0, const int64_t* seg_start, const AttentionShape& s, bool packed) {
  const int64_t klo = first_key(t0, seg_start, s.window);
  return packed ? klo / kPanelKeys * kPanelKeys : klo;
}

// Where each (query head, block) task's probabilities [t1 - t0, t1 - klo] lie in kept ones, in the
// forward loop's task order (h * blocks + block); the last entry is the total.
std::vector<int64_t> prob_offsets(int64_t n, const int64_t* seg_start, const AttentionShape& s, bool packed) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<int64_t> off(size_t(s.heads * blocks + 1), 0);
  for (int64_t task = 0; task < s.heads * blocks; ++task) {
    const int64_t t0 = task % blocks * kBlock, t1 = std::min(n, t0 + kBlock);
    off[size_t(task + 1)] = off[size_t(task)] + (t1 - t0) * (t1 - block_first_key(t0, seg_start, s, packed));
  }
  return off;
}

// Prefill and training forward: per query head and block of 64 queries, the scores against every
// key the block can see are one GEMM and the weighted sum of the values another (a dot product per
// query and key took ~24% of a 1B model's 512-token prompt; whole n x n score matrices in training
// did about twice the work). The GEMMs run single-threaded inside our parallel region (OpenBLAS;
// nested regions get one thread). lse may be null (prefill); probs (training) keeps the
// probabilities at prob_offsets.
void forward_blocks(const float* q, int64_t n, int64_t pos0, const float* k, const float* v, const KvLayout& kv,
                    const int64_t* seg_start, const AttentionShape& s, Products products, float* out, float* lse,
                    AttentionProbs* probs = nullptr) {
  // bf16 and fp32's gemm_f32 are training only (token-major keys, pos0 = 0)
  const bool packed = products != Products::kSgemm;
  const int64_t group = s.heads / s.kv_heads, hd = s.head_dim, blocks = (n + kBlock - 1) / kBlock;
  const KvPacks kp(products, k, v, n, s, true, false, false, true);
  std::vector<int64_t> off;
  if (probs) {
    off = prob_offsets(n, seg_start, s, packed);
    probs->p.resize(size_t(off.back()));
  }
  parallel_for_balanced(size_t(s.heads * blocks), 1, [&](size_t begin, size_t end) {
    std::vector<float> scratch(probs ? 0 : size_t(kBlock * (pos0 + n)));
    for (size_t task = begin; task < end; ++task) {
      const int64_t h = int64_t(task) / blocks, t0 = int64_t(task) % blocks * kBlock, t1 = std::min(n, t0 + kBlock);
      const int64_t klo = pos0 ? first_key(pos0 + t0, seg_start, s.window) : block_first_key(t0, seg_start, s, packed);
      const int64_t g = h / group, L = pos0 + t1 - klo;
      float* P = probs ? probs->p.data() + off[task] : scratch.data();
      block_probs(products, q, k, kv, t0, t1, pos0, klo, h, g, seg_start, s, nullptr, lse, P, kp);
      float* o = out + (t0 * s.heads + h) * hd;
      if (kp.bf16)
        gemm_bf16(Bf16Rows(P, L, false, t1 - t0, L), keys_of_t(kp.bf16->vt[size_t(g)], klo, L), o, s.heads * hd, false,
                  {Bf16Causal::kKUpTo, pos0 + t0 - klo});
      else if (kp.f32)
        gemm_f32(t1 - t0, P, L, false, keys_of_t(kp.f32->vt[size_t(g)], klo, L), o, s.heads * hd, false);
      else gemm(products, t1 - t0, hd, L, P, L, false, v + klo * kv.row + g * kv.head, kv.row, true, o, s.heads * hd, false);
    }
  });
}

// dS = P ⊙ (dP - D) · scale for one query's row, in place in dP (each element as the scalar
// expression computes it, so every version has the same bits).
ZEPHYR_CLONES_V4_V3 void softmax_grad(const float* __restrict p, float D, float scale, float* __restrict dp, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) dp[j] = p[j] * (dp[j] - D) * scale;
}

#define Z_AVX512 __attribute__((target("avx512f,avx512dq,fma")))

// Σ of each of 4 vectors, per 128-bit block: block b of the result holds [Σ_b a0, Σ_b a1, Σ_b a2, Σ_b a3].
Z_AVX512 inline __m512 block_sums4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
  const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
  return _mm512_add_ps(_mm512_shuffle_ps(t0, t1, 0x44), _mm512_shuffle_ps(t0, t1, 0xEE));
}

// The 16 lanes' sum of each of a[0..15], as one vector.
Z_AVX512 inline __m512 sums16(const __m512* a) {
  const __m512 u0 = block_sums4(a[0], a[1], a[2], a[3]), u1 = block_sums4(a[4], a[5], a[6], a[7]);
  const __m512 u2 = block_sums4(a[8], a[9], a[10], a[11]), u3 = block_sums4(a[12], a[13], a[14], a[15]);
  const __m512 p = _mm512_add_ps(_mm512_shuffle_f32x4(u0, u1, 0x44), _mm512_shuffle_f32x4(u0, u1, 0xEE));
  const __m512 r = _mm512_add_ps(_mm512_shuffle_f32x4(u2, u3, 0x44), _mm512_shuffle_f32x4(u2, u3, 0xEE));
  return _mm512_add_ps(_mm512_shuffle_f32x4(p, r, 0x88), _mm512_shuffle_f32x4(p, r, 0xDD));
}

// q·kr as 16 lanes' partial sums.
template <int C>
Z_AVX512 inline __m512 lanes_dot(const __m512* qv, const float* kr) {
  __m512 s = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kr));
  for (int c = 1; c < C; ++c) s = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kr + 16 * c), s);
  return s;
}

// One query over keys [lo, pos] for head_dim = 16·C, with q and the output in registers. A dot
// product and an axpy call per key (64 elements each) were ~29% of a step decoding 8 sequences of
// ~200 tokens with SmolLM2: the calls, a horizontal sum per key and out's loads and stores cost more
// than the multiply-adds. Here 16 keys' scores come out of one transposing sum.
template <int C>
Z_AVX512 void query_avx512(const float* q, int64_t lo, int64_t pos, const float* k, const float* v, int64_t stride, float scale,
                           float* scores, float* out) {
  __m512 qv[C];
  for (int c = 0; c < C; ++c) qv[c] = _mm512_loadu_ps(q + 16 * c);
  const __m512 sc = _mm512_set1_ps(scale);
  int64_t j = lo;
  for (; j + 16 <= pos + 1; j += 16) {
    __m512 a[16];
    for (int i = 0; i < 16; ++i) a[i] = lanes_dot<C>(qv, k + (j + i) * stride);
    _mm512_storeu_ps(scores + (j - lo), _mm512_mul_ps(sums16(a), sc));
  }
  for (; j <= pos; ++j) scores[j - lo] = _mm512_reduce_add_ps(lanes_dot<C>(qv, k + j * stride)) * scale;
  const int64_t n = pos - lo + 1;
  const float m = vec::max(scores, n);
  const float inv = float(1.0 / vec::exp_sub(scores, m, scores, n));
  __m512 o[2][C];  // even and odd keys: two chains hide the multiply-add latency
  for (int c = 0; c < C; ++c) o[0][c] = o[1][c] = _mm512_setzero_ps();
  for (j = lo; j <= pos; j += 2)
    for (int e = 0; e < 2 && j + e <= pos; ++e) {
      const __m512 p = _mm512_set1_ps(scores[j + e - lo]);
      const float* vr = v + (j + e) * stride;
      for (int c = 0; c < C; ++c) o[e][c] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vr + 16 * c), o[e][c]);
    }
  for (int c = 0; c < C; ++c) _mm512_storeu_ps(out + 16 * c, _mm512_mul_ps(_mm512_add_ps(o[0][c], o[1][c]), _mm512_set1_ps(inv)));
}

using QueryKernel = void (*)(const float*, int64_t, int64_t, const float*, const float*, int64_t, float, float*, float*);

// The AVX-512 kernel for this head_dim, or null (another head_dim, or a CPU without AVX-512).
QueryKernel query_kernel(int64_t head_dim) {
  if (cpu_isa() < CpuIsa::kAvx512 || head_dim % 16 != 0) return nullptr;
  switch (head_dim / 16) {
    case 2: return query_avx512<2>;
    case 4: return query_avx512<4>;
    case 5: return query_avx512<5>;
    case 6: return query_avx512<6>;
    case 8: return query_avx512<8>;
    default: return nullptr;
  }
}

}  // namespace

void attention_query(const float* q, int64_t pos, const float* k, const float* v, int64_t g, const AttentionShape& s,
                     const KvLayout& kv, std::vector<float>& scores, float* out) {
  const float scale = float(1.0 / std::sqrt(double(s.head_dim)));
  const int64_t lo = first_key(pos, nullptr, s.window);
  scores.resize(size_t(pos - lo + 1));
  if (const QueryKernel kernel = query_kernel(s.head_dim))
    return kernel(q, lo, pos, k + g * kv.head, v + g * kv.head, kv.row, scale, scores.data(), out);
  for (int64_t j = lo; j <= pos; ++j) scores[size_t(j - lo)] = vec::dot(q, k + j * kv.row + g * kv.head, s.head_dim) * scale;
  const float m = vec::max(scores.data(), int64_t(scores.size()));
  const float inv = float(1.0 / vec::exp_sub(scores.data(), m, scores.data(), int64_t(scores.size())));
  for (int64_t d = 0; d < s.head_dim; ++d) out[d] = 0;
  for (int64_t j = lo; j <= pos; ++j) vec::axpy(out, scores[size_t(j - lo)] * inv, v + j * kv.row + g * kv.head, s.head_dim);
}

void attention_forward(const float* q, int64_t n, int64_t pos0, const float* k, const float* v, const AttentionShape& s,
                       const KvLayout& kv, float* out) {
  if (n >= 16) return forward_blocks(q, n, pos0, k, v, kv, nullptr, s, Products::kSgemm, out, nullptr);
  const int64_t group = s.heads / s.kv_heads;
  parallel_for(size_t(n * s.heads), 1, [&](size_t begin, size_t end) {
    std::vector<float> scores;
    for (size_t task = begin; task < end; ++task) {
      const int64_t t = int64_t(task) / s.heads, h = int64_t(task) % s.heads;
      attention_query(q + (t * s.heads + h) * s.head_dim, pos0 + t, k, v, h / group, s, kv, scores,
                      out + (t * s.heads + h) * s.head_dim);
    }
  });
}

void attention_train_forward(const float* q, const float* k, const float* v, int64_t n, const int64_t* seg_start,
                             const AttentionShape& s, bool bf16, float* out, float* lse, AttentionProbs* probs) {
  forward_blocks(q, n, 0, k, v, KvLayout::token_major(s), seg_start, s, training_products(bf16), out, lse, probs);
}

void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* dout,
                        const float* lse, int64_t n, const int64_t* seg_start, const AttentionShape& s, bool bf16,
                        float* dq, float* dk, float* dv, const AttentionProbs* probs) {
  const int64_t group = s.heads / s.kv_heads, hd = s.head_dim, ldq = s.heads * hd, ldk = s.kv_heads * hd;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  const Products products = training_products(bf16);
  const bool packed = products != Products::kSgemm;
  // Kept probabilities spare recomputing the scores (a GEMM) and their exponentials.
  const KvPacks kp(products, k, v, n, s, !probs, true, true, false);
  const std::vector<int64_t> off = probs ? prob_offsets(n, seg_start, s, packed) : std::vector<int64_t>();
  if (probs && int64_t(probs->p.size()) != off.back()) fail("attention", "kept probabilities do not match the sequence");
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  // D = rowsum(dO ⊙ O) for every query and head, in one pass over both in memory order.
  std::vector<float> D(size_t(n * s.heads));
  parallel_for_balanced(size_t(n * s.heads), 64, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) D[i] = vec::dot(dout + i * hd, out + i * hd, hd);
  });
  // One task per query head, shared out between threads. Its dQ rows are its own; the first head
  // of each group adds its dK and dV into the outputs and the others into their own [n, head_dim]
  // buffers (zeroed by their task), added after in head order, so no two threads write the same
  // rows and the sums do not depend on which thread ran what. (A task per KV head, four here, left
  // the two threads ~16% apart in time: their speeds differ, and four tasks cannot even that out.)
  const int64_t extra_heads = s.heads - s.kv_heads;
  Buffer extra(size_t(extra_heads * 2 * n * hd));
  auto dkv_of = [&](int64_t h, bool values, int64_t& ld) -> float* {
    const int64_t g = h / group, i = h % group;
    ld = i == 0 ? ldk : hd;
    if (i == 0) return (values ? dv : dk) + g * hd;
    return extra.data() + ((g * (group - 1) + i - 1) * 2 + (values ? 1 : 0)) * n * hd;
  };
  parallel_for_balanced(size_t(s.heads), 1, [&](size_t h0, size_t h1) {
    std::vector<float> scratch(probs ? 0 : size_t(kBlock * n)), dP(size_t(kBlock * n));
    for (int64_t h = int64_t(h0); h < int64_t(h1); ++h) {
      const int64_t g = h / group;
      int64_t lddk = 0, lddv = 0;
      float* dk_h = dkv_of(h, false, lddk);
      float* dv_h = dkv_of(h, true, lddv);
      if (h % group) {
        std::fill(dk_h, dk_h + n * hd, 0.0f);
        std::fill(dv_h, dv_h + n * hd, 0.0f);
      }
      for (int64_t t0 = 0; t0 < n; t0 += kBlock) {
        const int64_t klo = block_first_key(t0, seg_start, s, packed), t1 = std::min(n, t0 + kBlock), L = t1 - klo;
        const float* P = probs ? probs->p.data() + off[size_t(h * blocks + t0 / kBlock)] : scratch.data();
        if (!probs)
          block_probs(products, q, k, KvLayout::token_major(s), t0, t1, 0, klo, h, g, seg_start, s, lse, nullptr, scratch.data(),
                      kp);
        // dP = dO_h V_gᵀ; dS = P ⊙ (dP - rowsum(dO_h ⊙ O_h)) · scale.
        const float* dout_h = dout + (t0 * s.heads + h) * hd;
        // The bf16 products skip the work the causal mask zeroes: dP past the diagonal, and the zero
        // part of dS and P (past the diagonal in a query's row, before it in a key's).
        const Bf16Causal cols{Bf16Causal::kColumns, t0 - klo}, up_to{Bf16Causal::kKUpTo, t0 - klo}, from{Bf16Causal::kKFrom, t0 - klo};
        if (kp.bf16)
          gemm_bf16(Bf16Rows(dout_h, ldq, false, t1 - t0, hd), keys_of(kp.bf16->v[size_t(g)], klo, L), dP.data(), L, false, cols);
        else if (kp.f32) gemm_f32(t1 - t0, dout_h, ldq, false, keys_of(kp.f32->v[size_t(g)], klo, L), dP.data(), L, false);
        else gemm(products, t1 - t0, L, hd, dout_h, ldq, false, v + klo * ldk + g * hd, ldk, false, dP.data(), L, false);
        for (int64_t t = t0; t < t1; ++t) softmax_grad(P + (t - t0) * L, D[size_t(t * s.heads + h)], scale, dP.data() + (t - t0) * L, L);
        // dQ_h += dS K_g;  dK_g += dSᵀ Q_h;  dV_g += Pᵀ dO_h.
        float* dq_h = dq + (t0 * s.heads + h) * hd;
        const float* q_h = q + (t0 * s.heads + h) * hd;
        if (kp.bf16) {  // dS packed for both of its products in one read
          Bf16Rows ds(t1 - t0, L), ds_t(L, t1 - t0);
          pack_with_transpose(dP.data(), L, ds, ds_t);
          gemm_bf16(ds, keys_of_t(kp.bf16->kt[size_t(g)], klo, L), dq_h, ldq, true, up_to);
          gemm_bf16(ds_t, Bf16Panels(q_h, ldq, true, hd, t1 - t0).view(), dk_h + klo * lddk, lddk, true, from);
          Bf16Rows pt(L, t1 - t0);
          pack_transposed(P, L, pt);
          gemm_bf16(pt, Bf16Panels(dout_h, ldq, true, hd, t1 - t0).view(), dv_h + klo * lddv, lddv, true, from);
        } else {
          if (kp.f32) gemm_f32(t1 - t0, dP.data(), L, false, keys_of_t(kp.f32->kt[size_t(g)], klo, L), dq_h, ldq, true);
          else gemm(products, t1 - t0, hd, L, dP.data(), L, false, k + klo * ldk + g * hd, ldk, true, dq_h, ldq, true);
          gemm(products, L, hd, t1 - t0, dP.data(), L, true, q_h, ldq, true, dk_h + klo * lddk, lddk, true);
          gemm(products, L, hd, t1 - t0, P, L, true, dout_h, ldq, true, dv_h + klo * lddv, lddv, true);
        }
      }
    }
  });
  if (extra_heads == 0) return;
  parallel_for_balanced(size_t(n), 16, [&](size_t t0, size_t t1) {
    for (int64_t h = 0; h < s.heads; ++h) {
      if (h % group == 0) continue;
      const int64_t g = h / group;
      int64_t ld = 0;
      const float* ek = dkv_of(h, false, ld);
      const float* ev = dkv_of(h, true, ld);
      for (size_t t = t0; t < t1; ++t)
        for (int64_t d = 0; d < hd; ++d) {
          dk[int64_t(t) * ldk + g * hd + d] += ek[int64_t(t) * hd + d];
          dv[int64_t(t) * ldk + g * hd + d] += ev[int64_t(t) * hd + d];
        }
    }
  });
}

}  // namespace zephyr

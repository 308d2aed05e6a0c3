#include "kernels/quant/products.h"

#include <atomic>
#include <string>
#include <vector>

#include "core/cpu_isa.h"
#include "core/error.h"
#include "kernels/quant/formats.h"
#include "kernels/quant/interleave.h"
#include "kernels/quant/isa.h"

namespace zephyr {

namespace quant {

namespace {

Isa from_cpu_isa() {
  const CpuIsa cpu = cpu_isa();
  return cpu >= CpuIsa::kAvx512Vnni ? Isa::Vnni : cpu >= CpuIsa::kAvx2 ? Isa::Avx2 : Isa::Scalar;
}
// The Isa a test forces (quant_force_isa), or -1 for best_isa(); atomic, so the threads of a
// product read it whole.
std::atomic<int> g_forced{-1};

}  // namespace

Isa best_isa() {
  static const Isa isa = from_cpu_isa();
  return isa;
}
Isa active_isa() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  return forced < 0 ? best_isa() : static_cast<Isa>(forced);
}

}  // namespace quant

using namespace quant;

namespace {

// The kernels for rows of n elements: the AVX-512 ones take 64 elements per step, so rows of an
// odd number of 32-blocks run on AVX2.
Isa isa_for(int64_t n) {
  const Isa isa = active_isa();
  return isa == Isa::Vnni && n % 64 != 0 ? Isa::Avx2 : isa;
}

void require_block_type(const char* where, DType t) {
  if (!is_quantized(t)) throw Error(std::string(where) + ": " + dtype_name(t) + " is not a block type");
}

void gemv_scalar(DType t, const uint8_t* w, size_t stride, const QuantizedActivations& x, int64_t r0, int64_t r1, float* y) {
  for (int64_t r = r0; r < r1; ++r) y[r] = float(quant_dot_reference(t, w + size_t(r) * stride, x));
}

}  // namespace

double quant_dot_reference(DType t, const void* row, const QuantizedActivations& x) {
  std::vector<float> w(size_t(x.n));
  dequantize_row(t, row, w.data(), x.n);
  double s = 0;
  for (int64_t i = 0; i < x.n; ++i) s += double(w[size_t(i)]) * double(x.lane_d[size_t(i / 4)]) * double(x.q[size_t(i)]);
  return s;
}

void quant_gemv_rows(DType t, const void* w, int64_t rows, int64_t n, const QuantizedActivations& x, int64_t r0, int64_t r1,
                     float* y) {
  const auto* base = static_cast<const uint8_t*>(w);
  if (is_interleaved(t)) return gemm_interleaved(t, base, rows, &x, 1, r0, r1, y, 0);
  require_block_type("quant_gemv_rows", t);
  const size_t stride = row_bytes(t, n);
  switch (isa_for(x.n)) {
    case Isa::Vnni: return gemv_vnni(t, base, stride, x, r0, r1, y);
    case Isa::Avx2: return gemv_avx2(t, base, stride, x, r0, r1, y);
    case Isa::Scalar: return gemv_scalar(t, base, stride, x, r0, r1, y);
  }
}

void quant_gemv_rows_tokens(DType t, const void* w, int64_t rows, const QuantizedActivations* x, int64_t ntok, int64_t r0,
                            int64_t r1, float* y, int64_t ldy) {
  if (!is_interleaved(t) && is_quantized(t) && isa_for(x[0].n) == Isa::Vnni)
    return gemv_tokens_vnni(t, static_cast<const uint8_t*>(w), row_bytes(t, x[0].n), x, ntok, r0, r1, y, ldy);
  // The other kernels, the interleaved ones included, are the same for any token count.
  for (int64_t i = 0; i < ntok; ++i) quant_gemv_rows(t, w, rows, x[0].n, x[i], r0, r1, y + i * ldy);
}

void quant_gemm_rows(DType t, const void* w, int64_t rows, const QuantizedActivations* x, int64_t ntok, int64_t r0, int64_t r1,
                     float* y, int64_t ldy) {
  const auto* base = static_cast<const uint8_t*>(w);
  if (is_interleaved(t)) return gemm_interleaved(t, base, rows, x, ntok, r0, r1, y, ldy);
  require_block_type("quant_gemm_rows", t);
  const size_t stride = row_bytes(t, x[0].n);
  switch (isa_for(x[0].n)) {
    case Isa::Vnni: return gemm_vnni(t, base, stride, x, ntok, r0, r1, y, ldy);
    case Isa::Avx2: return gemm_avx2(t, base, stride, x, ntok, r0, r1, y, ldy);
    case Isa::Scalar:
      for (int64_t i = 0; i < ntok; ++i) gemv_scalar(t, base, stride, x[i], r0, r1, y + i * ldy);
      return;
  }
}

void dequantize_rows(DType t, const void* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1, float* out) {
  const auto* base = static_cast<const uint8_t*>(w);
  if (best_isa() == Isa::Vnni) return dequantize_rows_vnni(t, base, rows, cols, r0, r1, out);
  if (best_isa() == Isa::Avx2 && !is_interleaved(t)) return dequantize_rows_avx2(t, base, row_bytes(t, cols), cols, r0, r1, out);
  for (int64_t r = r0; r < r1; ++r, out += cols) {
    if (is_interleaved(t)) dequantize_interleaved_row(t, w, rows, r, cols, out);
    else dequantize_row(t, base + size_t(r) * row_bytes(t, cols), out, cols);
  }
}

const char* quant_isa() {
  const Isa isa = active_isa();
  return isa == Isa::Vnni ? "avx512-vnni" : isa == Isa::Avx2 ? "avx2" : "scalar";
}

void quant_force_isa(const char* isa) {
  const std::string s = isa ? isa : "";
  if (s.empty()) g_forced = -1;
  else if (s == "scalar") g_forced = static_cast<int>(Isa::Scalar);
  else if (s == "avx2" && best_isa() != Isa::Scalar) g_forced = static_cast<int>(Isa::Avx2);
}

}  // namespace zephyr

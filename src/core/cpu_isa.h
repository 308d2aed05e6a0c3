// The instruction-set levels zephyr's hand-written kernels choose between, detected once, and the
// cap a user may put on them with ZEPHYR_CPU_ISA: a Zen 4 run with ZEPHYR_CPU_ISA=avx512_vnni takes
// the code paths of a Xeon without AVX512-BF16 (bf16: true then trains in fp32), avx2 those of a
// laptop without AVX-512. It lets one machine run and test another's code paths; like oneDNN's
// ONEDNN_MAX_CPU_ISA it only lowers, never raises, the level. Functions the compiler vectorises
// (target_clones, core/target_clones.h) keep the CPU's own choice, made at load: their AVX2 and
// AVX-512 clones compute the same values, but the baseline clone rounds a·b + c twice where those
// contract it to one FMA, so `baseline` caps our kernels without being a bit-exact x86-64 machine.
#pragma once
#include <optional>
#include <string>

namespace zephyr {

// Each level includes the ones below it.
enum class CpuIsa {
  kBaseline,    // x86-64: the scalar and compiler-vectorised code
  kAvx2,        // AVX2 with FMA and F16C (x86-64-v3)
  kAvx512,      // AVX-512 F, BW, CD, DQ and VL (x86-64-v4)
  kAvx512Vnni,  // and VNNI: the int8 kernels of the quantized products
  kAvx512Bf16,  // and AVX512-BF16 (with VNNI): the bf16 GEMM
};

// The level the kernels run at: the CPU's, lowered to ZEPHYR_CPU_ISA when that is set. Throws an
// Error naming the variable when its value is not a level's name.
CpuIsa cpu_isa();
// The CPU's own level, whatever the cap.
CpuIsa cpu_isa_detected();
// "baseline", "avx2", "avx512", "avx512_vnni", "avx512_bf16": the names ZEPHYR_CPU_ISA takes.
const char* cpu_isa_name(CpuIsa isa);
std::optional<CpuIsa> parse_cpu_isa(const std::string& name);
// One line for --version: the level in use and, when capped, the CPU's.
std::string cpu_isa_summary();

}  // namespace zephyr

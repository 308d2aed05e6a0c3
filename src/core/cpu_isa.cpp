#include "core/cpu_isa.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>

#include "core/error.h"

namespace zephyr {

namespace {

// By CpuIsa's value.
constexpr const char* kNames[] = {"baseline", "avx2", "avx512", "avx512_vnni", "avx512_bf16"};

CpuIsa detect() {
  __builtin_cpu_init();
#define Z_HAS(f) __builtin_cpu_supports(f)
  if (!(Z_HAS("avx2") && Z_HAS("fma"))) return CpuIsa::kBaseline;  // every AVX2 CPU has F16C (clang 16 cannot ask)
  if (!(Z_HAS("avx512f") && Z_HAS("avx512bw") && Z_HAS("avx512cd") && Z_HAS("avx512dq") && Z_HAS("avx512vl")))
    return CpuIsa::kAvx2;
  if (!Z_HAS("avx512vnni")) return CpuIsa::kAvx512;
  if (!Z_HAS("avx512bf16")) return CpuIsa::kAvx512Vnni;
#undef Z_HAS
  return CpuIsa::kAvx512Bf16;
}

CpuIsa capped() {
  const CpuIsa cpu = cpu_isa_detected();
  const char* set = std::getenv("ZEPHYR_CPU_ISA");
  if (!set || !*set) return cpu;
  const std::optional<CpuIsa> cap = parse_cpu_isa(set);
  if (!cap) {
    std::string what = std::string("'").append(set);  // appended: GCC 12 warns falsely on "'" + std::string(set)
    what += "' is not an instruction-set level; expected one of";
    for (const char* name : kNames) what.append(" ").append(name);
    fail_field("ZEPHYR_CPU_ISA", what + " (or unset, for this CPU's own)");
  }
  return std::min(*cap, cpu);
}

}  // namespace

CpuIsa cpu_isa_detected() {
  static const CpuIsa isa = detect();
  return isa;
}

CpuIsa cpu_isa() {
  static const CpuIsa isa = capped();  // a throw leaves it unset: the next call throws again
  return isa;
}

const char* cpu_isa_name(CpuIsa isa) { return kNames[static_cast<int>(isa)]; }

std::optional<CpuIsa> parse_cpu_isa(const std::string& name) {
  for (size_t i = 0; i < std::size(kNames); ++i)
    if (name == kNames[i]) return static_cast<CpuIsa>(i);
  return std::nullopt;
}

std::string cpu_isa_summary() {
  const CpuIsa isa = cpu_isa(), cpu = cpu_isa_detected();
  std::string s = std::string("kernels: ") + cpu_isa_name(isa);
  if (isa != cpu) s += std::string(" (ZEPHYR_CPU_ISA; this CPU: ") + cpu_isa_name(cpu) + ")";
  return s;
}

}  // namespace zephyr

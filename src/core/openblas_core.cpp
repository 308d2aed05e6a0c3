// Which of OpenBLAS's kernel sets runs our fp32 GEMMs on Intel CPUs with AVX-512.
//
// Debian 12's OpenBLAS (0.3.21, DYNAMIC_ARCH) picks its kernels by CPU model when it loads, and a
// model it does not know gets "Prescott": SSE3 kernels. An Emerald Rapids Xeon (family 6, model
// 207) is one: there its SGEMM ran 2048³ at 54-69 GFLOPS on 2 cores and with the SkylakeX kernels
// at 331-363, and the 56M fp32 SFT step at 254 tok/s against 972. So on an Intel CPU with AVX-512
// F/CD/BW/DQ/VL whose OpenBLAS chose a set without AVX-512, the SkylakeX set is chosen here: the
// one 0.3.21 itself gives the AVX-512 Xeons it knows (its Cooperlake set adds only bf16 kernels we
// do not call). AMD CPUs, sets OpenBLAS chose with AVX-512 and a user's OPENBLAS_CORETYPE are left
// alone. A ZEPHYR_CPU_ISA below AVX-512 (core/cpu_isa.h) caps OpenBLAS too: avx2 takes the
// Haswell set in place of an AVX-512 one, baseline the SSE3 Prescott set, so a capped run computes
// as a CPU of that level would.
//
// OpenBLAS reads OPENBLAS_CORETYPE in its library constructor, which runs before the program's
// own, and the program's preinit array is too early to set it (libc's initialisation then resets
// the environment). So this constructor sets the variable and redoes OpenBLAS's kernel choice
// through the DYNAMIC_ARCH entry points gotoblas_dynamic_quit/init (weak: a build of OpenBLAS for
// one CPU has neither, and is left alone), before any GEMM has run. It is compiled into each
// program that links zephyr_lib (an INTERFACE source, see CMakeLists.txt): an object of a static
// library that nothing references would not be linked.
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "core/cpu_isa.h"

extern "C" {
char* openblas_get_corename();
__attribute__((weak)) void gotoblas_dynamic_init();
__attribute__((weak)) void gotoblas_dynamic_quit();
}

namespace {

bool avx512_kernels(const char* core) {
  for (const char* name : {"SkylakeX", "Cooperlake", "SapphireRapids"})
    if (std::strcmp(core, name) == 0) return true;
  return false;
}

// The set to switch to, or null to keep OpenBLAS's choice.
const char* better_core() {
  using zephyr::CpuIsa;
  const char* core = openblas_get_corename();
  const char* cap_name = std::getenv("ZEPHYR_CPU_ISA");
  // Unset or not a level's name (main reports the latter): no cap.
  const CpuIsa cap = zephyr::parse_cpu_isa(cap_name ? cap_name : "").value_or(CpuIsa::kAvx512Bf16);
  if (cap == CpuIsa::kBaseline) return std::strcmp(core, "Prescott") != 0 ? "Prescott" : nullptr;
  if (cap == CpuIsa::kAvx2) return avx512_kernels(core) ? "Haswell" : nullptr;
  if (!__builtin_cpu_is("intel") || zephyr::cpu_isa_detected() < CpuIsa::kAvx512) return nullptr;
  return avx512_kernels(core) ? nullptr : "SkylakeX";
}

__attribute__((constructor)) void choose_openblas_core() {
  if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit || std::getenv("OPENBLAS_CORETYPE")) return;
  const char* core = better_core();
  if (!core) return;
  setenv("OPENBLAS_CORETYPE", core, 1);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  unsetenv("OPENBLAS_CORETYPE");  // programs we start choose their own
}

}  // namespace

# Sourced by the training benchmarks: their arguments (BUILD, REF), threads, where models go, the binary.
build=${1:-build}
ref=${2:-.ref}
threads=${BENCH_THREADS:-2}
models="$build/bench-models"
mkdir -p "$models"
z="$build/bin/zephyr"
# ZEPHYR_CPU_ISA (core/cpu_isa.h) runs zephyr at a lower CPU's level, e.g. avx512_vnni: a Xeon
# without AVX512-BF16. The PyTorch references follow it through oneDNN's, MKL's and ATen's own caps
# (PyTorch's bf16 matmul then runs emulated, as there: 75 against 408 GFLOPS on a Zen 4), so both
# sides take that CPU's code paths; the speeds stay this CPU's.
case "${ZEPHYR_CPU_ISA:-}" in
  avx512_vnni) isa_caps="AVX512_CORE_VNNI AVX512 avx512" ;;
  avx512) isa_caps="AVX512_CORE AVX512 avx512" ;;
  avx2) isa_caps="AVX2 AVX2 avx2" ;;
  baseline) isa_caps="SSE41 SSE4_2 default" ;;
  *) isa_caps="" ;;
esac
if [ -n "$isa_caps" ]; then
  read -r onednn mkl aten <<<"$isa_caps"
  export ONEDNN_MAX_CPU_ISA=$onednn DNNL_MAX_CPU_ISA=$onednn MKL_ENABLE_INSTRUCTIONS=$mkl ATEN_CPU_CAPABILITY=$aten
fi

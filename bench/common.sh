# Sourced by the training benchmarks: their arguments (BUILD, REF), threads, where models go, the binary.
build=${1:-build}
ref=${2:-.ref}
threads=${BENCH_THREADS:-2}
models="$build/bench-models"
mkdir -p "$models"
z="$build/bin/zephyr"

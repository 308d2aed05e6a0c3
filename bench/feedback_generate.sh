#!/usr/bin/env bash
# `zephyr feedback generate` on SmolLM2-135M-Instruct Q4_1: 64 prompts x 4 samples through the
# in-process batched engine (--concurrency 16: sixteen completions decoded together) against one
# request at a time (--concurrency 1), in the same run: completions/s and the ratio.
#   bash bench/feedback_generate.sh build
set -euo pipefail
build=${1:-build}
z="$build/bin/zephyr"
m=models/SmolLM2-135M-Instruct.Q4_1.gguf
tokens=${BENCH_FEEDBACK_TOKENS:-64}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -c "
import json
topics = ['the sea', 'bread', 'trains', 'winter', 'music', 'bees', 'maps', 'clocks']
for i in range(64):
    print(json.dumps({'prompt': f'Write a short paragraph about {topics[i % 8]} (#{i}).'}))" > "$tmp/prompts.jsonl"
rate() {  # concurrency -> completions/s
  local out="$tmp/c$1.jsonl" t0 t1
  rm -f "$out"
  t0=$(date +%s.%N)
  "$z" feedback generate --prompts "$tmp/prompts.jsonl" --model "$m" --completions-per-model 4 --max-tokens "$tokens" \
    --concurrency "$1" --seed 1 --out "$out" 2>/dev/null
  t1=$(date +%s.%N)
  python3 -c "import sys; n=sum(1 for _ in open('$out')); print(f'{n / ($t1 - $t0):.2f} {n}')"
}
read -r batched n1 < <(rate 16)
read -r single n2 < <(rate 1)
echo "| feedback generate, SmolLM2 Q4_1, 64 prompts x 4 samples, <= $tokens tokens | completions/s |"
echo "|---|---|"
echo "| batched engine (--concurrency 16) | $batched ($n1 completions) |"
echo "| one at a time (--concurrency 1) | $single ($n2 completions) |"
python3 -c "print(f'ratio: {$batched / $single:.2f}x')"

#!/usr/bin/env bash
# Several LoRA adapters beside one base in `zephyr serve`: aggregate generated tokens/s with 1 and
# 8 concurrent streaming clients (bench/serve_load.py) when every client asks for the base, and
# when the clients spread over four adapters (random, r 16, all-linear) and the base, all in one
# server and one run; and the same load on a server whose one adapter serves every request
# (--lora DIR). SmolLM2-135M-Instruct Q4_1.
#   bash bench/serve_adapters.sh [build]
set -euo pipefail
build=${1:-build}
threads=${BENCH_THREADS:-2}
tokens=${BENCH_SERVE_TOKENS:-64}
z="$build/bin/zephyr"
here=$(dirname "$0")
m=models/SmolLM2-135M-Instruct.Q4_1.gguf
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for a in a b c d; do python3 "$here/make_adapter.py" "$work/$a" 30 576 576 192 1536 16 "$(printf %d "'$a")"; done
source "$here/serve_common.sh"
load() {  # label, port, models (comma list or empty)
  for c in 1 8; do
    BENCH_MODELS="$3" python3 "$here/serve_load.py" "$2" "$c" $(( c == 1 ? 4 : 2 )) "$tokens" | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"| $1 | {r['clients']} | {r['tok_per_s']:.1f} | {r['stream_decode_tok_per_s']:.1f} | {r['ttft_p50_s']:.3f} |\" + (f\" errors: {r['errors']}\" if r['errors'] else ''))"
  done
}
serve() {  # port, flags...
  local port=$1; shift
  "$z" serve -m "$m" --model-name base --port "$port" --parallel 16 --ctx 512 -t "$threads" "$@" 2>/dev/null &
  pid=$!
  wait_port "$pid" "$port" || { echo "zephyr serve did not start" >&2; exit 1; }
}
echo "| requests for | clients | aggregate tok/s | per-stream decode tok/s | TTFT p50 s |"
echo "|---|---|---|---|---|"
port=$((18000 + RANDOM % 1000))
serve "$port" --lora "a=$work/a" --lora "b=$work/b" --lora "c=$work/c" --lora "d=$work/d"
load "the base (4 adapters loaded)" "$port" ""
load "adapter a" "$port" "a"
load "a, b, c, d and the base, mixed" "$port" "a,b,c,d,base"
kill -INT "$pid"; wait "$pid" || true
port=$((port + 1))
serve "$port" --lora "$work/a"
load "adapter a on every request (one --lora DIR)" "$port" ""
kill -INT "$pid"; wait "$pid" || true

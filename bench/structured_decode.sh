#!/usr/bin/env bash
# Constrained (JSON schema) against free decoding, one streaming client, on SmolLM2-135M-Instruct
# Q4_1 (vocab 49152) and a ~1B random Q4_0 model (vocab 32000): each stream's decode tokens/s
# after its first token, for `zephyr serve` and, when given, llama.cpp's `llama-server` (its
# json_schema grammar), alternated in the same run.
#   bash bench/structured_decode.sh build [/path/to/llama.cpp/build/bin]
set -euo pipefail
build=${1:-build}
llama=${2:-}
threads=${BENCH_THREADS:-2}
tokens=${BENCH_STRUCTURED_TOKENS:-200}
rounds=${ROUNDS:-2}
z="$build/bin/zephyr"
here=$(dirname "$0")
schema=$(mktemp --suffix=.json)
trap 'rm -f "$schema"' EXIT
# Long answers: a list of at least 4 records of strings and numbers.
cat > "$schema" <<'JSON'
{"type": "array", "minItems": 4, "items": {"type": "object", "additionalProperties": false,
 "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "city": {"type": "string"},
 "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["name", "age", "city", "tags"]}}
JSON
[ -f "$build/bench-models/1b-q4_0.gguf" ] || { echo "run bench/serve_vs_llama_server.sh first (it makes the 1B model)" >&2; exit 1; }
source "$(dirname "$0")/serve_common.sh"
rate() {  # port, [schema]: per-stream decode tok/s
  python3 "$here/serve_load.py" "$1" 1 3 "$tokens" ${2:-} | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(r['stream_decode_tok_per_s'] if not r['errors'] else 'error: ' + r['errors'][0])"
}
echo "| model | server | free tok/s | JSON schema tok/s | constrained / free |"
echo "|---|---|---|---|---|"
for m in models/SmolLM2-135M-Instruct.Q4_1.gguf "$build/bench-models/1b-q4_0.gguf"; do
  label=$(basename "$m" .gguf)
  for server in zephyr llama-server; do
    [ "$server" = llama-server ] && [ -z "$llama" ] && continue
    port=$((18000 + RANDOM % 2000))
    if [ "$server" = zephyr ]; then
      "$z" serve -m "$m" --port "$port" --parallel 1 --ctx 1024 -t "$threads" 2>/dev/null &
    else
      "$llama/llama-server" -m "$m" --port "$port" --parallel 1 -c 1024 -t "$threads" -tb "$threads" --no-webui >/dev/null 2>&1 &
    fi
    pid=$!
    wait_port "$pid" "$port" || { echo "$server did not start" >&2; exit 1; }
    free=() constrained=()
    for _ in $(seq "$rounds"); do
      free+=("$(rate "$port")")
      constrained+=("$(rate "$port" "$schema")")
    done
    kill -TERM "$pid"; wait "$pid" || true
    python3 - "$label" "$server" "${free[*]}" "${constrained[*]}" <<'PY'
import statistics, sys
label, server, free, cons = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
try:
    f, c = statistics.median(map(float, free)), statistics.median(map(float, cons))
    print(f"| {label} | {server} | {f:.1f} | {c:.1f} | {c / f:.2f} |")
except ValueError:
    print(f"| {label} | {server} | {' '.join(free)} | {' '.join(cons)} | |")
PY
  done
done

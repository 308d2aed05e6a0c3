#!/usr/bin/env bash
# Prefill and decode tokens/s of random BF16 models (a ~1B shape and Mistral-7B's shape) with 2
# threads, beside the decode upper bound: memory bandwidth (measured in the same run, right
# before each model) / bytes of weights one token reads. BENCH_SKIP_7B=1 skips the 7B model
# (it needs ~15 GB of disk and RAM and a few minutes to create).
set -euo pipefail
build=${1:-build}
threads=${BENCH_THREADS:-2}
models="$build/bench-models"
mkdir -p "$models"
z="$build/bin/zephyr"
make_model() {  # name, then init flags
  local name=$1; shift
  [ -f "$models/$name/config.json" ] || "$z" init -o "$models/$name" --dtype bf16 --vocab 32000 --seed 1 "$@" >&2
}
make_model 1b --hidden 2048 --layers 22 --heads 32 --kv-heads 4 --intermediate 5632
list="1b"
if [ "${BENCH_SKIP_7B:-0}" != 1 ]; then
  make_model 7b --hidden 4096 --layers 32 --heads 32 --kv-heads 8 --intermediate 14336 --sliding-window 4096
  list="1b 7b"
fi
for m in $list; do
  # Bandwidth right before and right after the model: this host's bandwidth swings (35-60 GB/s
  # seen) with its neighbours, so the bound takes the larger reading.
  bw1=$("$build/bench/memory_bandwidth" "$threads")
  run=$("$z" bench -m "$models/$m" -p 512 -n 128 -r 2 -t "$threads" --json)
  bw2=$("$build/bench/memory_bandwidth" "$threads")
  python3 - "$m" "$bw1" "$bw2" "$run" <<'PY'
import json, sys
name, bw1, bw2, r = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
bw = max(bw1, bw2, key=lambda b: b["gb_per_s"])
bound = bw["gb_per_s"] / r["weight_gb_per_token"]
print(f"{name}: {r['params'] / 1e9:.2f}B {r['type']}, {r['threads']} threads | prefill pp{r['pp']} {r['pp_tps']:.2f} ± {r['pp_sd']:.2f} tok/s"
      f" | decode tg{r['tg']} {r['tg_tps']:.2f} ± {r['tg_sd']:.2f} tok/s | bound {bound:.2f} tok/s"
      f" ({bw['gb_per_s']:.1f} GB/s [{bw1['gb_per_s']:.0f} before, {bw2['gb_per_s']:.0f} after] / {r['weight_gb_per_token']:.2f} GB) = {100 * r['tg_tps'] / bound:.0f}% of bound"
      f" | peak RSS {r['peak_rss_gb']:.2f} GB")
PY
done

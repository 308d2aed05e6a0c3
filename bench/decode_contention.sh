#!/usr/bin/env bash
# Decode on a shared machine (issue 17): SmolLM2-135M-Instruct Q4_1 generation tokens/s (`zephyr
# bench`, 128 tokens, 3 repetitions) with -t 1 and with the default threads (all cores), first
# with nothing else running, then while another process keeps one core busy (a spinning loop),
# in alternated rounds (ROUNDS=N, default 3). Prints each reading and the medians' ratios: the
# default threads under load against -t 1 under the same load (goal >= 0.8), and alone against
# -t 1 alone (goal >= 1.6 on 2 cores).
#   bash bench/decode_contention.sh [build]
set -euo pipefail
build=${1:-build}
z="$build/bin/zephyr"
m=models/SmolLM2-135M-Instruct.Q4_1.gguf
rounds=${ROUNDS:-3}
tg() { "$z" bench -m "$m" -p 0 -n 128 -r 3 --json "$@" | python3 -c "import json, sys; print(json.load(sys.stdin)['tg_tps'])"; }
declare -A got
for r in $(seq "$rounds"); do
  for load in alone busy; do
    pid=
    if [ "$load" = busy ]; then
      python3 -c "while True: pass" &
      pid=$!
      sleep 0.5
    fi
    for t in 1 default; do
      v=$(if [ "$t" = 1 ]; then tg -t 1; else tg; fi)
      echo "round $r, $load, -t $t: $v tok/s"
      got[$load-$t]="${got[$load-$t]:-} $v"
    done
    [ -n "$pid" ] && kill "$pid" && wait "$pid" 2>/dev/null || true
  done
done
python3 - "${got[alone-1]}" "${got[alone-default]}" "${got[busy-1]}" "${got[busy-default]}" <<'PY'
import statistics, sys
a1, ad, b1, bd = (statistics.median(float(x) for x in s.split()) for s in sys.argv[1:])
print(f"medians: alone -t 1 {a1:.0f}, default {ad:.0f} ({ad / a1:.2f}x); one core busy -t 1 {b1:.0f}, default {bd:.0f} "
      f"({bd / b1:.2f} of -t 1 under the same load)")
PY

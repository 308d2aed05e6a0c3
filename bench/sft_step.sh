#!/usr/bin/env bash
# One SFT step (forward, backward, AdamW) in tokens/s on Mistral-shaped models with vocab 32000 —
# ~56M (hidden 512, 8 layers, 8 heads, 4 KV heads, intermediate 1408) and ~125M (768, 12, 12,
# 4, 2048) — batch 4 x 512, 2 threads, beside the same step in PyTorch (Debian's python3-torch;
# fp32 and bf16 autocast; and PyPI's current torch with SDPA and torch.compile where
# bench/setup_torch_pypi.sh installed it) in the same run, and as a share of the GEMM peak measured
# beside each run (below); ours in fp32 and with bf16: true (bf16 matmul inputs, fp32 accumulation).
set -euo pipefail
source "$(dirname "$0")/common.sh"
rows="$models/rows-4x512.jsonl"
python3 "$(dirname "$0")/token_rows.py" "$rows" 4 512 32000
# The GEMM peaks: fp32 the higher of OpenBLAS's SGEMM and our gemm_f32, and for bf16 the higher of
# our gemm_bf16 and PyTorch's bf16 matmul (oneDNN), on the same 2048^3 product. This host runs the
# same code at two speeds ~15% apart for minutes at a time, so they are measured again right before
# each of our runs, and each run's share of the peak is taken against the peak measured beside it.
# On a CPU without AVX512-BF16 (gemm_peak's bf16 0) zephyr runs bf16: true in fp32, so that
# column's peak is the fp32 one (or PyTorch's bf16 matmul, if that is higher).
have_torch=0
/usr/bin/python3 -c "import torch" 2>/dev/null && have_torch=1
peaks() {  # -> "fp32 GFLOPS" "bf16 GFLOPS"
  local ours torch_bf16=0
  ours=$("$build/bench/gemm_peak" "$threads")
  if [ "$have_torch" = 1 ]; then
    torch_bf16=$(/usr/bin/python3 -c "
import time, torch
torch.set_num_threads($threads)
a = torch.full((2048, 2048), 0.5, dtype=torch.bfloat16); b = torch.full((2048, 2048), 0.25, dtype=torch.bfloat16)
best = 0.0
for _ in range(5):
    t = time.perf_counter(); a @ b; best = max(best, 2 * 2048 ** 3 / (time.perf_counter() - t) / 1e9)
print(round(best, 1))")
  fi
  python3 -c "import json, sys; p = json.loads(sys.argv[1]); print(p['gflops'], max(p['bf16_gflops'] or p['gflops'], float(sys.argv[2])))" "$ours" "$torch_bf16"
}
for spec in "56m 512,8,8,4,1408" "125m 768,12,12,4,2048"; do
  set -- $spec
  name=$1; IFS=, read -r H L NH NKV I <<<"$2"
  [ -f "$models/sft-$name/config.json" ] || "$z" init -o "$models/sft-$name" --hidden "$H" --layers "$L" --heads "$NH" \
    --kv-heads "$NKV" --intermediate "$I" --vocab 32000 --seed 1 >/dev/null 2>&1
  # Matmul weights incl. lm_head, 6 FLOPs a weight a token, + causal attention (QK and PV, fwd + bwd).
  fpt=$(( 6 * (L * (2 * H * H + 2 * H * NKV * (H / NH) + 3 * H * I) + 32000 * H) + 6 * L * 512 * H ))
  # Ours runs three times; reported: the median tokens/s and the median of the runs' shares of the
  # peak measured right before each.
  run_ours() {  # $1: bf16 true|false -> "median tokens/s (mean of steps 2-5)" "peak RSS MB" "median share of the peak"
    local out rss pk runs=()
    for _ in 1 2 3; do
      read -r p32 p16 < <(peaks)
      pk=$([ "$1" = true ] && echo "$p16" || echo "$p32")
      out=$(mktemp -d)
      rss=$("$z" sft --model_name_or_path "$models/sft-$name" --dataset_path "$rows" --output_dir "$out" --max_steps 5 \
        --per_device_train_batch_size 4 --logging_steps 1 --save_steps 0 --bf16 "$1" -t "$threads" 2>&1 | sed -n 's/.*peak RSS \([0-9.]*\) MB.*/\1/p')
      runs+=("$(python3 -c "
import json
m = [json.loads(l) for l in open('$out/metrics.jsonl') if 'loss' in l]
print(sum(x['tokens_per_second'] for x in m[1:]) / len(m[1:]))"):$pk")
      rm -rf "$out"
    done
    python3 -c "
import statistics, sys
fpt = float(sys.argv[1])
runs = [tuple(map(float, r.split(':'))) for r in sys.argv[3:]]
print(statistics.median(t for t, _ in runs), sys.argv[2] or 0, statistics.median(t * fpt / 1e9 / p for t, p in runs))" "$fpt" "$rss" "${runs[@]}"
  }
  read -r ours rss share < <(run_ours false)
  read -r ours_bf16 rss_bf16 share_bf16 < <(run_ours true)
  read -r peak32 peak16 < <(peaks)
  if [ "$have_torch" = 1 ]; then
    f32=$(/usr/bin/python3 "$(dirname "$0")/sft_step_torch.py" --shape "$2" --threads "$threads" --steps 2)
    b16=$(/usr/bin/python3 "$(dirname "$0")/sft_step_torch.py" --shape "$2" --threads "$threads" --steps 2 --bf16)
  else
    f32='{"impl": "pytorch (not installed)", "tokens_per_second": 0, "peak_rss_mb": 0}'; b16=$f32
  fi
  python3 - "$name" "$fpt" "$ours" "$f32" "$b16" "$rss" "$ours_bf16" "$rss_bf16" "$share" "$share_bf16" "$peak32" "$peak16" <<'PY'
import json, sys
name, flops_per_token, ours32, f32, b16 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4]), json.loads(sys.argv[5])
rss, ours, rss_bf16, share32, share16 = float(sys.argv[6] or 0), float(sys.argv[7]), float(sys.argv[8] or 0), float(sys.argv[9]), float(sys.argv[10])
peak32, peak16 = float(sys.argv[11]), float(sys.argv[12])
best = max(f32["tokens_per_second"], b16["tokens_per_second"])
print(f"sft step {name}: zephyr.cpp fp32 {ours32:.0f}, bf16 {ours:.0f} tok/s | {f32['impl']} {f32['tokens_per_second']:.0f} | {b16['impl']} "
      f"{b16['tokens_per_second']:.0f} | ratio to PyTorch's best {ours / best if best else 0:.2f}x | "
      f"fp32 {ours32 * flops_per_token / 1e9:.0f} GFLOPS, {100 * share32:.0f}% of the fp32 GEMM peak (the higher of SGEMM and ours) measured beside each run | "
      f"bf16 {ours * flops_per_token / 1e9:.0f} GFLOPS, {100 * share16:.0f}% of the bf16 GEMM peak (the higher of ours and PyTorch's; without AVX512-BF16, of fp32's) "
      f"measured beside each run | peaks after the runs: fp32 {peak32:.0f}, bf16 {peak16:.0f} GFLOPS | "
      f"peak RSS {rss:.0f} / {rss_bf16:.0f} MB (fp32 / bf16) vs PyTorch {f32['peak_rss_mb']:.0f} / {b16['peak_rss_mb']:.0f} MB")
PY
  if [ -x "$ref/torch-pypi/bin/python" ]; then  # the current PyTorch at its best: SDPA + compile
    for flags in "" "--bf16"; do
      "$ref/torch-pypi/bin/python" "$(dirname "$0")/sft_step_torch.py" --shape "$2" --threads "$threads" --steps 2 --sdpa --compile \
        $flags 2>/dev/null | tail -1
    done | python3 -c "
import json, sys
ours = max($ours, $ours_bf16)
for line in sys.stdin:
    r = json.loads(line)
    print(f'  {r[\"impl\"]}: {r[\"tokens_per_second\"]:.0f} tok/s, peak RSS {r[\"peak_rss_mb\"]:.0f} MB; zephyr.cpp best / it: {ours / r[\"tokens_per_second\"]:.2f}x')"
  fi
done

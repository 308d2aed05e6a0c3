#!/usr/bin/env bash
# One SFT step (forward, backward, AdamW) in tokens/s on Mistral-shaped models with vocab 32000 —
# ~56M (hidden 512, 8 layers, 8 heads, 4 KV heads, intermediate 1408) and ~125M (768, 12, 12,
# 4, 2048) — batch 4 x 512, 2 threads, beside the same step in PyTorch (Debian's python3-torch;
# fp32 and bf16 autocast; and PyPI's current torch with SDPA and torch.compile where
# bench/setup_torch_pypi.sh installed it) in the same run, and beside the GEMM peaks measured here (fp32 SGEMM; bf16:
# the higher of our gemm_bf16 and PyTorch's bf16 matmul); ours in fp32 and with bf16: true (bf16
# matmul inputs, fp32 accumulation).
set -euo pipefail
source "$(dirname "$0")/common.sh"
rows="$models/rows-4x512.jsonl"
python3 "$(dirname "$0")/token_rows.py" "$rows" 4 512 32000
peak=$("$build/bench/gemm_peak" "$threads")
# PyTorch's bf16 matmul (oneDNN) on the same 2048^3 product: the bf16 peak is the higher of it and ours.
torch_bf16=0
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  torch_bf16=$(/usr/bin/python3 -c "
import time, torch
torch.set_num_threads($threads)
a = torch.full((2048, 2048), 0.5, dtype=torch.bfloat16); b = torch.full((2048, 2048), 0.25, dtype=torch.bfloat16)
best = 0.0
for _ in range(5):
    t = time.perf_counter(); a @ b; best = max(best, 2 * 2048 ** 3 / (time.perf_counter() - t) / 1e9)
print(round(best, 1))")
fi
for spec in "56m 512,8,8,4,1408" "125m 768,12,12,4,2048"; do
  set -- $spec
  name=$1; IFS=, read -r H L NH NKV I <<<"$2"
  [ -f "$models/sft-$name/config.json" ] || "$z" init -o "$models/sft-$name" --hidden "$H" --layers "$L" --heads "$NH" \
    --kv-heads "$NKV" --intermediate "$I" --vocab 32000 --seed 1 >/dev/null 2>&1
  # This host runs the same binary at two speeds ~15% apart for minutes at a time, so ours runs
  # three times and reports the median.
  run_ours() {  # $1: bf16 true|false -> "median over 3 runs of the mean tokens/s of steps 2-5" "peak RSS MB"
    local out rss runs=()
    for _ in 1 2 3; do
      out=$(mktemp -d)
      rss=$("$z" sft --model_name_or_path "$models/sft-$name" --dataset_path "$rows" --output_dir "$out" --max_steps 5 \
        --per_device_train_batch_size 4 --logging_steps 1 --save_steps 0 --bf16 "$1" -t "$threads" 2>&1 | sed -n 's/.*peak RSS \([0-9.]*\) MB.*/\1/p')
      runs+=("$(python3 -c "
import json
m = [json.loads(l) for l in open('$out/metrics.jsonl') if 'loss' in l]
print(sum(x['tokens_per_second'] for x in m[1:]) / len(m[1:]))")")
      rm -rf "$out"
    done
    python3 -c "import statistics, sys; print(statistics.median(map(float, sys.argv[1:])), '${rss:-0}')" "${runs[@]}"
  }
  read -r ours rss < <(run_ours false)
  read -r ours_bf16 rss_bf16 < <(run_ours true)
  if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    f32=$(/usr/bin/python3 "$(dirname "$0")/sft_step_torch.py" --shape "$2" --threads "$threads" --steps 2)
    b16=$(/usr/bin/python3 "$(dirname "$0")/sft_step_torch.py" --shape "$2" --threads "$threads" --steps 2 --bf16)
  else
    f32='{"impl": "pytorch (not installed)", "tokens_per_second": 0, "peak_rss_mb": 0}'; b16=$f32
  fi
  python3 - "$name" "$2" "$ours" "$f32" "$b16" "$peak" "$rss" "$ours_bf16" "$torch_bf16" "$rss_bf16" <<'PY'
import json, sys
name, shape, ours32, f32, b16, peak = sys.argv[1], sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4]), json.loads(sys.argv[5]), json.loads(sys.argv[6])
rss, ours, torch_bf16, rss_bf16 = float(sys.argv[7] or 0), float(sys.argv[8]), float(sys.argv[9]), float(sys.argv[10] or 0)
bf16_peak = max(peak["bf16_gflops"], torch_bf16)
H, L, NH, NKV, I = map(int, shape.split(","))
hd = H // NH
params = L * (2 * H * H + 2 * H * NKV * hd + 3 * H * I) + 32000 * H  # matmul weights incl. lm_head
flops_per_token = 6 * params + 6 * L * 512 * H  # + causal attention (QK and PV, fwd + bwd)
best = max(f32["tokens_per_second"], b16["tokens_per_second"])
bf16_share = (f" | bf16 {ours * flops_per_token / 1e9:.0f} GFLOPS = {100 * ours * flops_per_token / 1e9 / bf16_peak:.0f}% of the bf16 GEMM "
              f"peak ({bf16_peak:.0f}: ours {peak['bf16_gflops']:.0f}, PyTorch {torch_bf16:.0f})") if bf16_peak else ""
print(f"sft step {name}: zephyr.cpp fp32 {ours32:.0f}, bf16 {ours:.0f} tok/s | {f32['impl']} {f32['tokens_per_second']:.0f} | {b16['impl']} "
      f"{b16['tokens_per_second']:.0f} | ratio to PyTorch's best {ours / best if best else 0:.2f}x | "
      f"fp32 {ours32 * flops_per_token / 1e9:.0f} GFLOPS = {100 * ours32 * flops_per_token / 1e9 / peak['gflops']:.0f}% of the fp32 SGEMM peak ({peak['gflops']:.0f})"
      + bf16_share +
      f" | peak RSS {rss:.0f} / {rss_bf16:.0f} MB (fp32 / bf16) vs PyTorch {f32['peak_rss_mb']:.0f} / {b16['peak_rss_mb']:.0f} MB")
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

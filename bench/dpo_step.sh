#!/usr/bin/env bash
# One DPO step (policy forward + backward on chosen and rejected, AdamW) in tokens/s on the ~56M
# model of the SFT benchmark, 2 pairs of 512-token rows (256 prompt + 256 completion), 2 threads,
# beside PyTorch's step as TRL runs it without precomputed reference log-probs (policy and
# reference forward), fp32 and bf16 autocast, in the same run; and beside PyPI's current torch with
# SDPA and torch.compile where bench/setup_torch_pypi.sh installed it.
set -euo pipefail
source "$(dirname "$0")/common.sh"
pairs="$models/pairs-2x512.jsonl"
python3 -c "
import json, random
random.seed(0)
with open('$pairs', 'w') as f:
    for _ in range(2):
        p = [random.randrange(32000) for _ in range(256)]
        c = [random.randrange(32000) for _ in range(256)]
        r = [random.randrange(32000) for _ in range(256)]
        f.write(json.dumps({'chosen_input_ids': p + c, 'chosen_labels': [-100] * 256 + c,
                            'rejected_input_ids': p + r, 'rejected_labels': [-100] * 256 + r}) + '\n')"
[ -f "$models/sft-56m/config.json" ] || "$z" init -o "$models/sft-56m" --hidden 512 --layers 8 --heads 8 --kv-heads 4 \
  --intermediate 1408 --vocab 32000 --seed 1 >/dev/null 2>&1
out=$(mktemp -d)
"$z" dpo --model_name_or_path "$models/sft-56m" --dataset_path "$pairs" --output_dir "$out" --max_steps 3 \
  --per_device_train_batch_size 2 --logging_steps 1 --save_steps 0 --bf16 true -t "$threads" >/dev/null 2>&1
ours=$(python3 -c "
import json
m = [json.loads(l) for l in open('$out/metrics.jsonl') if 'loss' in l]
print(sum(x['tokens_per_second'] for x in m[1:]) / len(m[1:]))")
rm -rf "$out"
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  f32=$(/usr/bin/python3 "$(dirname "$0")/sft_step_torch.py" --shape 512,8,8,4,1408 --threads "$threads" --steps 2 --dpo)
  b16=$(/usr/bin/python3 "$(dirname "$0")/sft_step_torch.py" --shape 512,8,8,4,1408 --threads "$threads" --steps 2 --dpo --bf16)
else
  f32='{"impl": "pytorch (not installed)", "tokens_per_second": 0}'; b16=$f32
fi
python3 - "$ours" "$f32" "$b16" <<'PY'
import json, sys
ours, f32, b16 = float(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
best = max(f32["tokens_per_second"], b16["tokens_per_second"])
print(f"dpo step 56m: zephyr.cpp bf16 {ours:.0f} tok/s | {f32['impl']} {f32['tokens_per_second']:.0f} | {b16['impl']} "
      f"{b16['tokens_per_second']:.0f} | ratio to PyTorch's best {ours / best if best else 0:.2f}x")
PY
if [ -x "$ref/torch-pypi/bin/python" ]; then  # the current PyTorch at its best: SDPA + compile
  for flags in "" "--bf16"; do
    "$ref/torch-pypi/bin/python" "$(dirname "$0")/sft_step_torch.py" --shape 512,8,8,4,1408 --threads "$threads" --steps 2 --dpo \
      --sdpa --compile $flags 2>/dev/null | tail -1
  done | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print(f'  {r[\"impl\"]}: {r[\"tokens_per_second\"]:.0f} tok/s; zephyr.cpp / it: {$ours / r[\"tokens_per_second\"]:.2f}x')"
fi

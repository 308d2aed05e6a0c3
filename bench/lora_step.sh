#!/usr/bin/env bash
# LoRA and QLoRA SFT steps (r 16, alpha 32, all-linear, one row of 512 tokens, 2 threads) on the
# ~1B random model (TinyLlama's shape, vocab 32000): tokens/s (mean of steps 2-3) and peak RSS of
# zephyr's LoRA step on the fp32-widened base (fp32 and bf16: true) and QLoRA step on its Q4_0 GGUF,
# beside PyTorch + peft's LoRA step on the same model in the same run — Debian's torch (eager), and
# PyPI's current torch (SDPA; bf16 autocast) where .ref/torch-pypi holds it (bench/setup_torch_pypi.sh).
set -euo pipefail
source "$(dirname "$0")/common.sh"
# The ~1B model of bench/model_speed.sh (made the same way when that has not run yet).
base="$models/1b"
gguf="$models/1b-q4_0.gguf"
[ -f "$base/config.json" ] || "$z" init -o "$base" --dtype bf16 --vocab 32000 --seed 1 --hidden 2048 --layers 22 --heads 32 \
  --kv-heads 4 --intermediate 5632 >/dev/null 2>&1
[ -f "$gguf" ] || "$z" quantize "$base" "$gguf" --type q4_0 >/dev/null 2>&1
rows="$models/rows-3x512.jsonl"
python3 "$(dirname "$0")/token_rows.py" "$rows" 3 512 32000
run_ours() {  # model bf16 -> "tokens/s of steps 2-3" "peak RSS MB"
  local out rss; out=$(mktemp -d)
  rss=$("$z" sft --model_name_or_path "$1" --dataset_path "$rows" --output_dir "$out" --max_steps 3 --use_peft true \
    --lora_r 16 --lora_alpha 32 --lora_target_modules all-linear --per_device_train_batch_size 1 --logging_steps 1 \
    --save_steps 0 --bf16 "$2" -t "$threads" 2>&1 | sed -n 's/.*peak RSS \([0-9.]*\) MB.*/\1/p')
  python3 -c "
import json
m = [json.loads(l) for l in open('$out/metrics.jsonl') if 'loss' in l]
print(sum(x['tokens_per_second'] for x in m[1:]) / len(m[1:]), '${rss:-0}')"
  rm -rf "$out"
}
read -r lora lora_rss < <(run_ours "$base" false)
read -r lora_bf16 lora_bf16_rss < <(run_ours "$base" true)
read -r qlora qlora_rss < <(run_ours "$gguf" false)
read -r qlora_bf16 qlora_bf16_rss < <(run_ours "$gguf" true)
refs=()
step="$(dirname "$0")/lora_step_peft.py"
if [ -x "$ref/peft/bin/python" ]; then
  refs+=("$("$ref/peft/bin/python" "$step" --model "$base" --threads "$threads" 2>/dev/null | tail -1)")
  refs+=("$("$ref/peft/bin/python" "$step" --model "$base" --threads "$threads" --bf16 2>/dev/null | tail -1)")
fi
if [ -x "$ref/torch-pypi/bin/python" ]; then
  refs+=("$("$ref/torch-pypi/bin/python" "$step" --model "$base" --threads "$threads" --attn sdpa 2>/dev/null | tail -1)")
  refs+=("$("$ref/torch-pypi/bin/python" "$step" --model "$base" --threads "$threads" --attn sdpa --bf16 2>/dev/null | tail -1)")
fi
# Mistral-7B's shape (the model of bench/model_speed.sh) with load_in_4bit: peak RSS of one QLoRA
# step at sequence length 1024 with gradient checkpointing. BENCH_SKIP_7B=1 skips it (~15 GB of disk).
big=""
if [ "${BENCH_SKIP_7B:-0}" != 1 ]; then
  [ -f "$models/7b/config.json" ] || "$z" init -o "$models/7b" --dtype bf16 --vocab 32000 --seed 1 --hidden 4096 --layers 32 \
    --heads 32 --kv-heads 8 --intermediate 14336 --sliding-window 4096 >/dev/null 2>&1
  python3 "$(dirname "$0")/token_rows.py" "$models/rows-1x1024.jsonl" 1 1024 32000
  out=$(mktemp -d)
  rss=$("$z" sft --model_name_or_path "$models/7b" --dataset_path "$models/rows-1x1024.jsonl" --output_dir "$out" --max_steps 1 \
    --use_peft true --load_in_4bit true --lora_r 16 --lora_alpha 32 --lora_target_modules all-linear \
    --per_device_train_batch_size 1 --max_seq_length 1024 --gradient_checkpointing true --bf16 true --save_steps 0 \
    -t "$threads" 2>&1 | sed -n 's/.*peak RSS \([0-9.]*\) MB.*/\1/p')
  big=$(python3 -c "
import json
m = json.loads(open('$out/metrics.jsonl').readline())
print(f\"qlora step 7b (load_in_4bit Q4_0, r 16, all-linear, 1 x 1024, gradient checkpointing, bf16): {m['tokens_per_second']:.1f} tok/s, peak RSS {${rss:-0} / 1024:.2f} GB\")")
  rm -rf "$out"
fi
python3 - "$lora" "$lora_bf16" "$qlora" "$qlora_bf16" "$lora_rss" "$lora_bf16_rss" "$qlora_rss" "$qlora_bf16_rss" "${refs[@]}" <<'PY'
import json, sys
v = [float(x or 0) for x in sys.argv[1:9]]
refs = [json.loads(r) for r in sys.argv[9:] if r.startswith("{")]
best = max([r["tokens_per_second"] for r in refs] or [0])
print(f"lora step 1b (r 16, all-linear, 1 x 512): zephyr.cpp LoRA fp32 {v[0]:.0f}, bf16 {v[1]:.0f} tok/s (peak RSS {v[4]:.0f} / {v[5]:.0f} MB)"
      f" | QLoRA Q4_0 fp32 {v[2]:.0f}, bf16 {v[3]:.0f} tok/s (peak RSS {v[6]:.0f} / {v[7]:.0f} MB)")
for r in refs:
    print(f"  {r['impl']}: {r['tokens_per_second']:.0f} tok/s, peak RSS {r['peak_rss_mb']:.0f} MB")
if best:
    print(f"  ratio of zephyr's best LoRA step to PyTorch + peft's best: {max(v[0], v[1]) / best:.2f}x")
PY
[ -z "$big" ] || echo "$big"

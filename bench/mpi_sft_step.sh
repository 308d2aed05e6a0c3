#!/usr/bin/env bash
# Data-parallel SFT on one machine: the ~56M Mistral-shaped model (hidden 512, 8 layers, vocab
# 32000), global batch 4 x 512, as 1 process x 2 threads and as mpirun -np 2 x 1 thread (2 rows
# each), tokens/s of steps 2-6 and the share of each step in the gradient allreduce (the trainer's
# allreduce_share: waiting for the slower rank included). Then a model of the scaling to 8 and 64
# nodes, from the measured step time and gradient size, for a ring allreduce over common networks.
set -euo pipefail
build=${1:-build}
models="$build/bench-models"
mkdir -p "$models"
z="$build/bin/zephyr"
if ! command -v mpirun >/dev/null || ! "$z" --version | grep -q "MPI ("; then
  echo "mpi sft step: skipped (no mpirun, or zephyr built without MPI)"
  exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rows="$models/rows-4x512.jsonl"
[ -f "$rows" ] || python3 "$(dirname "$0")/token_rows.py" "$rows" 4 512 32000
model="$models/sft-56m"
[ -f "$model/config.json" ] || "$z" init -o "$model" --hidden 512 --layers 8 --heads 8 --kv-heads 4 --intermediate 1408 \
  --vocab 32000 --seed 1 >/dev/null 2>&1
common=(--model_name_or_path "$model" --dataset_path "$rows" --max_steps 6 --logging_steps 1 --save_steps 0)
one=$(mktemp -d) two=$(mktemp -d)
trap 'rm -rf "$one" "$two"' EXIT
"$z" sft "${common[@]}" --output_dir "$one" --per_device_train_batch_size 4 -t 2 2>/dev/null
mpirun -np 2 --oversubscribe -x OMP_NUM_THREADS=1 "$z" sft "${common[@]}" --output_dir "$two" \
  --per_device_train_batch_size 2 2>/dev/null
params=$(python3 -c "
import json, struct
raw = open('$model/model.safetensors', 'rb').read(8); n = struct.unpack('<Q', raw)[0]
h = json.loads(open('$model/model.safetensors', 'rb').read(8 + n)[8:])
import math
print(sum(math.prod(t['shape']) for k, t in h.items() if k != '__metadata__'))")
python3 - "$one" "$two" "$params" <<'PY'
import json, sys
one, two, params = sys.argv[1], sys.argv[2], int(sys.argv[3])
def steps(d):
    m = [json.loads(l) for l in open(d + "/metrics.jsonl") if '"loss"' in l][1:]
    return m
m1, m2 = steps(one), steps(two)
t1 = sum(x["tokens_per_second"] for x in m1) / len(m1)
t2 = sum(x["tokens_per_second"] for x in m2) / len(m2)
share = sum(x["allreduce_share"] for x in m2) / len(m2)
step_s = 2048 / t2
grad_bytes = 4 * params
reduce_s = share * step_s
print(f"mpi sft step 56m (global batch 4 x 512): 1 rank x 2 threads {t1:.0f} tok/s | 2 ranks x 1 thread {t2:.0f} tok/s "
      f"({t2 / t1:.2f}x) | allreduce {100 * share:.1f}% of the step ({reduce_s * 1000:.0f} ms for {grad_bytes / 1e6:.0f} MB of "
      f"fp32 gradients, shared memory: {2 * grad_bytes / max(reduce_s, 1e-9) / 1e9:.1f} GB/s incl. waiting)")
# Scaling model: each node computes a step of its own 4 x 512 rows in the one-node step time
# (2 cores); a ring allreduce moves 2 (N-1)/N of the gradient bytes through each link plus 2 (N-1)
# latencies. No overlap with the backward is assumed (the trainer reduces after it).
compute_s = 2048 / t1
for net, gbps, lat_us in (("10 GbE", 10, 50), ("25 GbE", 25, 30), ("100 Gb/s InfiniBand", 100, 3)):
    cells = []
    for n in (8, 64):
        comm = 2 * (n - 1) / n * grad_bytes / (gbps / 8 * 1e9) + 2 * (n - 1) * lat_us * 1e-6
        eff = compute_s / (compute_s + comm)
        cells.append(f"{n} nodes {eff * 100:.0f}% efficiency ({n * 2048 / (compute_s + comm):.0f} tok/s)")
    print(f"  model, {net}: " + ", ".join(cells))
PY

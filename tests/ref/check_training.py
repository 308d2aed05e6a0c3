"""Four optimizer steps of `zephyr sft` (gradient accumulation, clipping, AdamW with weight
decay that skips norm weights, cosine schedule with warmup) against the same steps in PyTorch:
torch.optim.AdamW and clip_grad_norm_ on the float64 reference model of torch_mistral.py, with
transformers' cosine-with-warmup formula. Run with a python that has torch."""
import argparse
import atexit
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError:
    print("skipped: torch is not installed (Debian: apt-get install python3-torch)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(__file__))
from torch_mistral import forward, load_model, read_safetensors  # noqa: E402


def cosine_with_warmup(step, warmup, total):
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    z = ap.parse_args().zephyr
    tmp = tempfile.mkdtemp(prefix="zephyr-train-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # left behind, ~1 GB per run filled the disk
    model = os.path.join(tmp, "m")
    subprocess.run([z, "init", "-o", model, "--hidden", "32", "--layers", "2", "--heads", "4", "--kv-heads", "2",
                    "--intermediate", "48", "--vocab", "64", "--sliding-window", "5", "--seed", "4"], check=True, capture_output=True)
    rng = np.random.default_rng(0)
    rows = []
    for n in (11, 7, 9, 12):
        ids = [int(i) for i in rng.integers(0, 64, n)]
        rows.append({"input_ids": ids, "labels": [-100, -100] + ids[2:]})
    data = os.path.join(tmp, "rows.jsonl")
    with open(data, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    lr, steps, warmup, wd, clip, accum = 2e-2, 4, 1, 0.1, 0.5, 2
    out = os.path.join(tmp, "out")
    # One micro-batch holds every row, so the epoch order cannot matter; two micro-batches per step.
    subprocess.run([z, "sft", "--model_name_or_path", model, "--dataset_path", data, "--output_dir", out,
                    "--learning_rate", str(lr), "--lr_scheduler_type", "cosine", "--warmup_steps", str(warmup),
                    "--max_steps", str(steps), "--per_device_train_batch_size", "4", "--gradient_accumulation_steps",
                    str(accum), "--weight_decay", str(wd), "--max_grad_norm", str(clip), "--logging_steps", "1",
                    "--save_steps", "0", "--adam_beta2", "0.99"], check=True, capture_output=True)

    cfg, W = load_model(model)
    params = {k: torch.nn.Parameter(v) for k, v in W.items()}
    decay = [p for k, p in params.items() if "norm" not in k]
    no_decay = [p for k, p in params.items() if "norm" in k]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.99), eps=1e-8)
    targets = sum(sum(1 for t in r["labels"][1:] if t != -100) for r in rows) * accum
    ref_lr, ref_norm, ref_loss = [], [], []
    for step in range(steps):
        opt.zero_grad()
        total = 0.0
        for _ in range(accum):
            for r in rows:
                logits = forward(cfg, params, r["input_ids"])
                target = torch.tensor(r["labels"][1:] + [-100])
                total = total + torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="sum")
        (total / targets).backward()
        ref_norm.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), clip)))
        ref_loss.append(float(total) / targets)
        step_lr = lr * cosine_with_warmup(step, warmup, steps)
        ref_lr.append(step_lr)
        for g in opt.param_groups:
            g["lr"] = step_lr
        opt.step()

    metrics = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    got = read_safetensors(os.path.join(out, "model.safetensors"))
    problems = []
    for m, l, n, loss in zip(metrics, ref_lr, ref_norm, ref_loss):
        if abs(m["learning_rate"] - l) > 1e-12 + 1e-9 * l:
            problems.append(f"step {m['step']}: learning_rate {m['learning_rate']} vs {l}")
        if abs(m["grad_norm"] - n) > 1e-4 * n:
            problems.append(f"step {m['step']}: grad_norm {m['grad_norm']} vs {n}")
        if abs(m["loss"] - loss) > 1e-5 * loss:
            problems.append(f"step {m['step']}: loss {m['loss']} vs {loss}")
    worst = 0.0
    start = read_safetensors(os.path.join(model, "model.safetensors"))
    for k, p in params.items():
        ref = p.detach().numpy()
        moved = float(np.abs(ref - start[k].numpy()).max())
        err = float(np.abs(got[k].numpy() - ref).max())
        worst = max(worst, err / max(moved, 1e-12))
        if err > 1e-3 * moved + 1e-6:
            problems.append(f"{k}: weights differ by {err:.2e} after moving {moved:.2e}")
    for p in problems[:8]:
        print("FAIL", p)
    if problems:
        sys.exit(f"{len(problems)} training checks failed")
    print(f"ok   4 AdamW steps: lr, grad_norm, loss and weights match PyTorch (worst weight error {worst:.1e} of the update)")


if __name__ == "__main__":
    main()

"""zephyr's training loss and gradients (`zephyr debug sft-grads`) against PyTorch autograd on
the independent float64 implementation in torch_mistral.py: tiny random models with GQA, a sliding
window shorter than the rows, tied embeddings, padded rows of different lengths and labels masked
with -100. Run with a python that has torch."""
import argparse
import atexit
import json
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


def reference(d, rows):
    cfg, W = load_model(d)
    for t in W.values():
        t.requires_grad_(True)
    total, count = 0.0, 0
    for r in rows:
        ids, labels = r["input_ids"], r["labels"]
        logits = forward(cfg, W, ids)
        target = torch.tensor(labels[1:] + [-100])
        total = total + torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="sum")
        count += int((target != -100).sum())
    loss = total / count
    loss.backward()
    grads = {}
    for name, t in W.items():
        if name == "lm_head.weight" and cfg.get("tie_word_embeddings"):
            continue
        grads[name] = t.grad.numpy()
    return float(loss), grads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    a = ap.parse_args()
    z = a.zephyr
    tmp = tempfile.mkdtemp(prefix="zephyr-grads-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # left behind, ~1 GB per run filled the disk
    rng = np.random.default_rng(3)
    failures = 0
    cases = [
        ("mistral f32, GQA 4/2, window 4 < rows of 9-14 tokens",
         ["--hidden", "32", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--intermediate", "40", "--vocab", "50",
          "--sliding-window", "4"]),
        ("llama bf16 weights, tied embeddings, head_dim 12",
         ["--arch", "llama", "--hidden", "24", "--layers", "2", "--heads", "2", "--kv-heads", "1", "--intermediate", "36",
          "--vocab", "40", "--tie-embeddings", "--dtype", "bf16", "--head-dim", "12"]),
    ]
    for n, (name, flags) in enumerate(cases):
        d = os.path.join(tmp, f"m{n}")
        subprocess.run([z, "init", "-o", d, "--seed", str(n + 1), *flags], check=True, capture_output=True)
        vocab = json.load(open(os.path.join(d, "config.json")))["vocab_size"]
        rows = []
        for length in (14, 9, 12):
            ids = [int(i) for i in rng.integers(0, vocab, length)]
            labels = [i if rng.random() < 0.7 else -100 for i in ids]
            labels[:3] = [-100] * 3  # a prompt without loss
            rows.append({"input_ids": ids, "labels": labels})
        data = os.path.join(tmp, f"rows{n}.jsonl")
        with open(data, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        out = os.path.join(tmp, f"grads{n}.safetensors")
        p = subprocess.run([z, "debug", "sft-grads", "-m", d, "--data", data, "-o", out], check=True, capture_output=True)
        got_loss = json.loads(p.stdout)["loss"]
        ref_loss, ref_grads = reference(d, rows)
        got = read_safetensors(out)
        problems = []
        if abs(got_loss - ref_loss) > 1e-5 * abs(ref_loss):
            problems.append(f"loss {got_loss} vs {ref_loss}")
        if set(got) != set(ref_grads):
            problems.append(f"tensor names differ: {sorted(set(got) ^ set(ref_grads))}")
        worst = 0.0
        for k, g in ref_grads.items():
            if k not in got:
                continue
            err = float(np.abs(got[k].numpy() - g).max())
            scale = float(np.abs(g).max())
            worst = max(worst, err / (scale + 1e-12))
            if err > 1e-4 * scale + 1e-7:
                problems.append(f"{k}: max error {err:.2e} (gradient scale {scale:.2e})")
        failures += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {name}: loss {got_loss:.6f} vs {ref_loss:.6f}, "
              f"worst relative gradient error {worst:.1e}" + ("".join("\n     " + s for s in problems[:5])))
    if failures:
        sys.exit(f"{failures} gradient checks failed")
    print("loss and every gradient match PyTorch autograd")


if __name__ == "__main__":
    main()

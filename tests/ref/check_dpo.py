"""`zephyr debug dpo-loss` against PyTorch: completion log-probs (prompt tokens excluded, the
labels' -100), TRL's sigmoid (with label smoothing), IPO (mean log-probs) and hinge losses, TRL's
metrics, and the policy's gradients by autograd on torch_mistral.py; with policy = reference the
loss is exactly log 2 and every reward 0. Run with a python that has torch."""
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
    import torch.nn.functional as F
except ImportError:
    print("skipped: torch is not installed (Debian: apt-get install python3-torch)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(__file__))
from torch_mistral import forward, load_model, read_safetensors  # noqa: E402


def logps(cfg, W, ids, labels, mean):
    logits = forward(cfg, W, ids)[:-1]
    target = torch.tensor(labels[1:])
    mask = target != -100
    lp = torch.log_softmax(logits, -1).gather(1, target.clamp(min=0)[:, None])[:, 0]
    s = (lp * mask).sum()
    return s / mask.sum() if mean else s


def reference(policy_dir, ref_dir, pairs, beta, loss_type, ls):
    cfg, W = load_model(policy_dir)
    _, R = load_model(ref_dir)
    for t in W.values():
        t.requires_grad_(True)
    mean = loss_type == "ipo"
    losses, m = [], {k: [] for k in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                                     "logps/chosen", "logps/rejected")}
    for p in pairs:
        pc = logps(cfg, W, p["chosen_input_ids"], p["chosen_labels"], mean)
        pr = logps(cfg, W, p["rejected_input_ids"], p["rejected_labels"], mean)
        with torch.no_grad():
            rc = logps(cfg, R, p["chosen_input_ids"], p["chosen_labels"], mean)
            rr = logps(cfg, R, p["rejected_input_ids"], p["rejected_labels"], mean)
        h = (pc - pr) - (rc - rr)
        if loss_type == "sigmoid":
            losses.append(-F.logsigmoid(beta * h) * (1 - ls) - F.logsigmoid(-beta * h) * ls)
        elif loss_type == "ipo":
            losses.append((h - 1 / (2 * beta)) ** 2)
        else:
            losses.append(torch.relu(1 - beta * h))
        cr, rj = float(beta * (pc - rc)), float(beta * (pr - rr))
        m["rewards/chosen"].append(cr)
        m["rewards/rejected"].append(rj)
        m["rewards/accuracies"].append(float(cr > rj))
        m["rewards/margins"].append(cr - rj)
        m["logps/chosen"].append(float(pc))
        m["logps/rejected"].append(float(pr))
    loss = torch.stack(losses).mean()
    loss.backward()
    grads = {k: t.grad.numpy() for k, t in W.items() if t.grad is not None}
    return float(loss), {k: sum(v) / len(v) for k, v in m.items()}, grads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    z = ap.parse_args().zephyr
    tmp = tempfile.mkdtemp(prefix="zephyr-dpo-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # left behind, ~1 GB per run filled the disk
    flags = ["--hidden", "32", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--intermediate", "40", "--vocab", "48",
             "--sliding-window", "6"]
    policy, ref = os.path.join(tmp, "policy"), os.path.join(tmp, "ref")
    subprocess.run([z, "init", "-o", policy, "--seed", "1", *flags], check=True, capture_output=True)
    subprocess.run([z, "init", "-o", ref, "--seed", "2", *flags], check=True, capture_output=True)
    rng = np.random.default_rng(5)
    pairs = []
    for plen, clen, rlen in ((4, 5, 7), (6, 3, 3), (3, 8, 4)):
        prompt = [int(i) for i in rng.integers(0, 48, plen)]
        c = [int(i) for i in rng.integers(0, 48, clen)]
        r = [int(i) for i in rng.integers(0, 48, rlen)]
        pairs.append({"chosen_input_ids": prompt + c, "chosen_labels": [-100] * plen + c,
                      "rejected_input_ids": prompt + r, "rejected_labels": [-100] * plen + r})
    data = os.path.join(tmp, "pairs.jsonl")
    with open(data, "w") as f:
        f.writelines(json.dumps(p) + "\n" for p in pairs)
    failures = 0
    for loss_type, beta, ls in (("sigmoid", 0.1, 0.1), ("ipo", 0.5, 0.0), ("hinge", 2.0, 0.0)):
        out = os.path.join(tmp, f"g-{loss_type}.safetensors")
        p = subprocess.run([z, "debug", "dpo-loss", "-m", policy, "--ref", ref, "--data", data, "--beta", str(beta),
                            "--loss-type", loss_type, "--label-smoothing", str(ls), "-o", out], capture_output=True)
        if p.returncode != 0:
            failures += 1
            print(f"FAIL {loss_type}: {p.stderr.decode()}")
            continue
        got = json.loads(p.stdout)
        ref_loss, ref_m, ref_g = reference(policy, ref, pairs, beta, loss_type, ls)
        problems = []
        if abs(got["loss"] - ref_loss) > 1e-5 * max(1.0, abs(ref_loss)):
            problems.append(f"loss {got['loss']} vs {ref_loss}")
        for k, v in ref_m.items():
            if abs(got[k] - v) > 1e-5 * max(1.0, abs(v)):
                problems.append(f"{k} {got[k]} vs {v}")
        g = read_safetensors(out)
        worst = 0.0
        for k, rg in ref_g.items():
            err, scale = float(np.abs(g[k].numpy() - rg).max()), float(np.abs(rg).max())
            worst = max(worst, err / (scale + 1e-12))
            if err > 1e-4 * scale + 1e-8:
                problems.append(f"grad {k}: {err:.2e} (scale {scale:.2e})")
        failures += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {loss_type} (beta {beta}, label smoothing {ls}): loss {got['loss']:.6f} vs "
              f"{ref_loss:.6f}, metrics match, worst relative gradient error {worst:.1e}" + "".join("\n     " + s for s in problems[:5]))
    p = subprocess.run([z, "debug", "dpo-loss", "-m", policy, "--ref", policy, "--data", data], capture_output=True, check=True)
    same = json.loads(p.stdout)
    ok = abs(same["loss"] - math.log(2)) < 1e-12 and same["rewards/chosen"] == 0 and same["rewards/margins"] == 0
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} policy = reference: loss {same['loss']!r} = log 2, rewards 0")
    if failures:
        sys.exit(f"{failures} DPO checks failed")
    print("DPO loss, metrics and gradients match PyTorch")


if __name__ == "__main__":
    main()

"""zephyr's logits against an independent PyTorch implementation (torch_mistral.py) on tiny
random models: GQA, a sliding window shorter than the sequence, head_dim != hidden/heads, tied
embeddings, Llama and Mistral, F32/BF16/F16 weights, sharded files written by the `safetensors`
library, and a prompt longer than one prefill chunk. Run with a python that has torch."""
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
    import torch  # noqa: F401
except ImportError:
    print("skipped: torch is not installed (Debian: apt-get install python3-torch)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(__file__))
from torch_mistral import forward, load_model  # noqa: E402


def zephyr_logits(z, model, ids, tmp):
    out = os.path.join(tmp, "logits.bin")
    subprocess.run([z, "debug", "logits", "-m", model, "--ids", " ".join(map(str, ids)), "-o", out],
                   check=True, capture_output=True)
    return np.fromfile(out, dtype="<f4").reshape(len(ids), -1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    ap.add_argument("--ref-python", required=True, help="python with transformers + safetensors")
    a = ap.parse_args()
    z = a.zephyr
    tmp = tempfile.mkdtemp(prefix="zephyr-model-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # left behind, ~1 GB per run filled the disk
    here = os.path.dirname(os.path.abspath(__file__))
    cases = []

    def init(name, *flags):
        d = os.path.join(tmp, name)
        subprocess.run([z, "init", "-o", d, *flags], check=True, capture_output=True)
        return d

    def hf(name, config, dtype, shards):
        d = os.path.join(tmp, name)
        subprocess.run([a.ref_python, os.path.join(here, "write_hf_model.py"), "--out", d, "--config", json.dumps(config),
                        "--dtype", dtype, "--shards", str(shards), "--seed", "7"], check=True)
        return d

    cases.append(("mistral f32, GQA 4/2, window 5 < 16 tokens, intermediate not a multiple of 16",
                  init("m1", "--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--intermediate", "88",
                       "--vocab", "300", "--sliding-window", "5", "--seed", "1"), 16))
    cases.append(("llama bf16, tied embeddings, GQA 8/2",
                  init("m2", "--arch", "llama", "--hidden", "64", "--layers", "3", "--heads", "8", "--kv-heads", "2",
                       "--intermediate", "128", "--vocab", "500", "--tie-embeddings", "--dtype", "bf16", "--seed", "2"), 20))
    cases.append(("HF-written mistral f16, 3 shards, head_dim 24 != 64/4, window 6, rope_theta 1e6",
                  hf("m3", {"arch": "mistral", "hidden_size": 64, "intermediate_size": 100, "num_hidden_layers": 2,
                            "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 24, "vocab_size": 260,
                            "sliding_window": 6, "rope_theta": 1e6, "rms_norm_eps": 1e-6}, "float16", 3), 18))
    cases.append(("HF-written llama f32, 300 tokens (more than one 256-token prefill chunk)",
                  hf("m4", {"arch": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                            "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 128,
                            "max_position_embeddings": 512}, "float32", 1), 300))
    cases.append(("HF-written mistral f32, window 40 inside a 300-token prompt",
                  hf("m5", {"arch": "mistral", "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
                            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
                            "sliding_window": 40, "max_position_embeddings": 1024}, "float32", 2), 300))
    failures = 0
    rng = np.random.default_rng(0)
    for name, d, n in cases:
        cfg, W = load_model(d)
        ids = [int(i) for i in rng.integers(0, cfg["vocab_size"], n)]
        ref = forward(cfg, W, ids).numpy()
        got = zephyr_logits(z, d, ids, tmp)
        err = float(np.abs(got - ref).max())
        scale = float(np.abs(ref).max())
        same_argmax = bool((got.argmax(-1) == ref.argmax(-1)).all())
        ok = err <= 2e-5 * max(1.0, scale) + 1e-5 and same_argmax
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: max |zephyr - torch| = {err:.2e} (logit scale {scale:.2f})")
    if failures:
        sys.exit(f"{failures} model checks failed")
    print("all logits match the PyTorch reference")


if __name__ == "__main__":
    main()

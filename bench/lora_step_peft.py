"""PyTorch + peft's LoRA SFT step for `make bench`: transformers' model read from an HF directory,
peft's LoRA (r 16, alpha 32, all linear layers, dropout 0.05 as TRL's defaults) on it, forward +
backward + AdamW over the adapters on one batch of token rows; fp32 or bf16 autocast, eager or SDPA
attention (torch.compile with --compile). Prints tokens/s and peak RSS as JSON."""
import argparse
import json
import resource
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"])
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32, attn_implementation=a.attn)
    model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                            task_type="CAUSAL_LM"))
    model.train()
    step_fn = torch.compile(model) if a.compile else model
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    V = base.config.vocab_size
    ids = torch.randint(0, V, (a.batch, a.seq))
    times = []
    for step in range(a.steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            logits = step_fn(ids).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, V), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step > 0:  # the first step warms up allocators, thread pools (and compiles)
            times.append(time.perf_counter() - t0)
    print(json.dumps({"impl": f"pytorch {torch.__version__.split('+')[0]} + peft {a.attn}{' compile' if a.compile else ''} "
                              f"{'bf16 autocast' if a.bf16 else 'fp32'}",
                      "tokens_per_second": a.batch * a.seq / (sum(times) / len(times)),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()

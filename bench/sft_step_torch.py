"""The same training step in PyTorch for `make bench`: a Mistral-architecture model (the network of
tests/ref/torch_mistral.py as nn.Modules, eager attention as transformers' eager path), forward +
backward + AdamW on a batch of token rows, fp32 or bf16 autocast. --dpo makes it TRL's DPO step
without precomputed reference log-probs: the rows are chosen/rejected halves, the reference model
runs a forward pass without gradients. Prints tokens/s as JSON."""
import argparse
import json
import math
import resource
import time

import torch
from torch import nn


class Layer(nn.Module):
    def __init__(self, H, I, nh, nkv):
        super().__init__()
        hd = H // nh
        self.nh, self.nkv, self.hd = nh, nkv, hd
        self.q, self.k = nn.Linear(H, nh * hd, bias=False), nn.Linear(H, nkv * hd, bias=False)
        self.v, self.o = nn.Linear(H, nkv * hd, bias=False), nn.Linear(nh * hd, H, bias=False)
        self.gate, self.up, self.down = nn.Linear(H, I, bias=False), nn.Linear(H, I, bias=False), nn.Linear(I, H, bias=False)
        self.n1, self.n2 = nn.Parameter(torch.ones(H)), nn.Parameter(torch.ones(H))

    @staticmethod
    def norm(x, w):
        x32 = x.float()
        return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-5)).to(x.dtype)

    sdpa = False  # torch.nn.functional.scaled_dot_product_attention instead of the eager product

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.norm(x, self.n1)
        q = self.q(h).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        rot = lambda t: torch.cat((-t[..., self.hd // 2:], t[..., :self.hd // 2]), -1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k = k.repeat_interleave(self.nh // self.nkv, 1)
        v = v.repeat_interleave(self.nh // self.nkv, 1)
        if Layer.sdpa:
            out = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask, -1, dtype=torch.float32).to(q.dtype)
            out = att @ v
        x = x + self.o(out.transpose(1, 2).reshape(B, T, -1))
        h = self.norm(x, self.n2)
        return x + self.down(nn.functional.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, V, H, L, nh, nkv, I):
        super().__init__()
        self.embed = nn.Embedding(V, H)
        self.layers = nn.ModuleList(Layer(H, I, nh, nkv) for _ in range(L))
        self.norm = nn.Parameter(torch.ones(H))
        self.head = nn.Linear(H, V, bias=False)
        self.hd = H // nh

    def forward(self, ids):
        T = ids.shape[1]
        inv = 1.0 / (10000 ** (torch.arange(0, self.hd, 2).float() / self.hd))
        ang = torch.arange(T).float()[:, None] * inv
        emb = torch.cat((ang, ang), -1)
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.embed(ids)
        for l in self.layers:
            x = l(x, emb.cos().to(x.dtype), emb.sin().to(x.dtype), mask)
        return self.head(Layer.norm(x, self.norm))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", required=True, help="hidden,layers,heads,kv_heads,intermediate")
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--dpo", action="store_true")
    ap.add_argument("--sdpa", action="store_true", help="scaled_dot_product_attention (torch >= 2)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (torch >= 2)")
    a = ap.parse_args()
    Layer.sdpa = a.sdpa
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    H, L, nh, nkv, I = map(int, a.shape.split(","))
    model = Model(a.vocab, H, L, nh, nkv, I)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq))
    ref = Model(a.vocab, H, L, nh, nkv, I) if a.dpo else None
    if a.compile:
        model_call = torch.compile(model)
        ref_call = torch.compile(ref) if ref is not None else None
    else:
        model_call, ref_call = model, ref

    def seq_logps(m, x):  # m: the (compiled) callable
        lp = torch.log_softmax(m(x)[:, :-1].float(), -1).gather(2, x[:, 1:, None])[..., 0]
        return lp[:, a.seq // 2:].sum(-1)  # the completion half of each row
    times = []
    for step in range(a.steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            if a.dpo:
                pol = seq_logps(model_call, ids)
                with torch.no_grad():
                    r = seq_logps(ref_call, ids)
                half = a.batch // 2
                h = (pol[:half] - r[:half]) - (pol[half:] - r[half:])
                loss = -nn.functional.logsigmoid(0.1 * h).mean()
            else:
                logits = model_call(ids)
        if not a.dpo:
            loss = nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, a.vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step > 0:  # the first step warms up allocators and thread pools
            times.append(time.perf_counter() - t0)
    tps = a.batch * a.seq / (sum(times) / len(times))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    extras = (" sdpa" if a.sdpa else "") + (" compile" if a.compile else "")
    print(json.dumps({"impl": f"pytorch {torch.__version__.split('+')[0]}{extras} {'bf16 autocast' if a.bf16 else 'fp32'}{' DPO' if a.dpo else ''}",
                      "tokens_per_second": tps,
                      "peak_rss_mb": rss_mb}))


if __name__ == "__main__":
    main()

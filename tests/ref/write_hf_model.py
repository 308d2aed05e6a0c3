"""Writes a random model directory the way Hugging Face tools do — config.json by transformers'
own config class, weights by the `safetensors` library, optionally sharded with an index — so
zephyr's loader is tested on files it did not write. Run with the reference venv's python."""
import argparse
import json
import os

import numpy as np
from safetensors.numpy import save_file
from transformers import LlamaConfig, MistralConfig


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", required=True, help="JSON of config kwargs plus 'arch'")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    kw = json.loads(args.config)
    arch = kw.pop("arch", "mistral")
    cfg = (MistralConfig if arch == "mistral" else LlamaConfig)(**kw)
    cfg.save_pretrained(args.out)
    rng = np.random.default_rng(args.seed)
    H, I, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    hd = getattr(cfg, "head_dim", None) or H // cfg.num_attention_heads
    nq, nkv = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd
    shapes = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,)}
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, H)
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes.update({p + "self_attn.q_proj.weight": (nq, H), p + "self_attn.k_proj.weight": (nkv, H),
                       p + "self_attn.v_proj.weight": (nkv, H), p + "self_attn.o_proj.weight": (H, nq),
                       p + "mlp.gate_proj.weight": (I, H), p + "mlp.up_proj.weight": (I, H),
                       p + "mlp.down_proj.weight": (H, I), p + "input_layernorm.weight": (H,),
                       p + "post_attention_layernorm.weight": (H,)})
    tensors = {}
    for name, shape in shapes.items():
        # Norm weights away from 1 so a forgotten norm multiply shows up.
        t = 1 + 0.1 * rng.standard_normal(shape) if name.endswith("norm.weight") else 0.05 * rng.standard_normal(shape)
        tensors[name] = t.astype(args.dtype)
    names = list(tensors)
    if args.shards == 1:
        save_file(tensors, os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
        return
    weight_map, total = {}, 0
    for s in range(args.shards):
        part = names[s::args.shards]
        fname = f"model-{s + 1:05d}-of-{args.shards:05d}.safetensors"
        save_file({n: tensors[n] for n in part}, os.path.join(args.out, fname), metadata={"format": "pt"})
        for n in part:
            weight_map[n] = fname
            total += tensors[n].nbytes
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


if __name__ == "__main__":
    main()

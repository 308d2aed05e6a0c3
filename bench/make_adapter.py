"""Writes a random LoRA adapter as peft saves one (adapter_config.json + F32 adapter_model.safetensors)
for a Llama/Mistral-shaped model, on every layer's seven linear projections (all-linear), so that
the serving benchmarks can put adapters beside a base without training any. Standard library only.
usage: python3 make_adapter.py OUT_DIR LAYERS HIDDEN Q_DIM KV_DIM INTERMEDIATE RANK SEED"""
import array
import json
import os
import random
import struct
import sys

out, layers, hidden, q_dim, kv_dim, inter, rank, seed = sys.argv[1], *(int(x) for x in sys.argv[2:9])
shapes = {"self_attn.q_proj": (q_dim, hidden), "self_attn.k_proj": (kv_dim, hidden), "self_attn.v_proj": (kv_dim, hidden),
          "self_attn.o_proj": (hidden, q_dim), "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden),
          "mlp.down_proj": (hidden, inter)}
rng = random.Random(seed)
header, blobs, offset = {}, [], 0
for layer in range(layers):
    for module, (rows, cols) in shapes.items():
        name = f"base_model.model.model.layers.{layer}.{module}.lora_"
        for which, shape in (("A", (rank, cols)), ("B", (rows, rank))):
            data = array.array("f", (rng.uniform(-0.02, 0.02) for _ in range(shape[0] * shape[1]))).tobytes()
            header[name + which + ".weight"] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
            blobs.append(data)
            offset += len(data)
os.makedirs(out, exist_ok=True)
head = json.dumps(header).encode()
with open(os.path.join(out, "adapter_model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))
with open(os.path.join(out, "adapter_config.json"), "w") as f:
    json.dump({"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "bias": "none", "target_modules": [m.split(".")[1] for m in shapes],
               "base_model_name_or_path": ""}, f)

"""What `zephyr sft` writes loads in Hugging Face's own libraries: transformers reads config.json
and the tokenizer (with its chat template), the `safetensors` library reads the weights, with
every tensor MistralForCausalLM expects present in the right shape. Run with the reference venv."""
import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file
from transformers import AutoConfig, AutoTokenizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fixtures import mistral_tokenizer_dir  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    ap.add_argument("--models", required=True)
    a = ap.parse_args()
    z = a.zephyr
    tmp = tempfile.mkdtemp(prefix="zephyr-hf-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # left behind, ~1 GB per run filled the disk
    tmpl = "{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + eos_token + '\n' }}{% endfor %}"
    tok = mistral_tokenizer_dir(a.models, os.path.join(tmp, "tok"), tmpl, add_bos=False)
    model, out = os.path.join(tmp, "m"), os.path.join(tmp, "out")
    subprocess.run([z, "init", "-o", model, "--hidden", "32", "--layers", "2", "--heads", "4", "--kv-heads", "2",
                    "--intermediate", "48", "--sliding-window", "8", "--tokenizer", tok, "--dtype", "bf16"], check=True, capture_output=True)
    data = os.path.join(tmp, "d.jsonl")
    open(data, "w").write(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")
    subprocess.run([z, "sft", "--model_name_or_path", model, "--dataset_path", data, "--output_dir", out, "--max_steps", "2",
                    "--learning_rate", "1e-3"], check=True, capture_output=True)
    cfg = AutoConfig.from_pretrained(out)
    problems = []
    if cfg.model_type != "mistral" or cfg.sliding_window != 8 or cfg.num_key_value_heads != 2:
        problems.append(f"config: {cfg.model_type}, window {cfg.sliding_window}, kv heads {cfg.num_key_value_heads}")
    weights = load_file(os.path.join(out, "model.safetensors"))
    H, I, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    hd = H // cfg.num_attention_heads
    expect = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,), "lm_head.weight": (V, H)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        expect.update({p + "self_attn.q_proj.weight": (H, H), p + "self_attn.k_proj.weight": (2 * hd, H),
                       p + "self_attn.v_proj.weight": (2 * hd, H), p + "self_attn.o_proj.weight": (H, H),
                       p + "mlp.gate_proj.weight": (I, H), p + "mlp.up_proj.weight": (I, H), p + "mlp.down_proj.weight": (H, I),
                       p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,)})
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if got != expect:
        problems.append(f"tensors differ: {sorted(set(got.items()) ^ set(expect.items()))[:4]}")
    if any(v.dtype != np.float32 for v in weights.values()):
        problems.append("weights are not F32")
    t = AutoTokenizer.from_pretrained(out)
    text = t.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    if text != "<|user|>\nhi</s>\n":
        problems.append(f"chat template after training: {text!r}")
    for p in problems:
        print("FAIL", p)
    if problems:
        sys.exit(1)
    print("ok   the trained model directory loads in transformers (config, tokenizer, template) and safetensors")


if __name__ == "__main__":
    main()

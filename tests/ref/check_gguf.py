"""GGUF against llama.cpp's own Python package `gguf` (PyPI: the writer/reader/quantizers its
converters use), `safetensors` and `tokenizers`:

1. GGUF files written by `gguf.GGUFWriter` — q/k rows permuted as llama.cpp's converter does,
   tensors F32 / Q8_0 / Q4_0 / Q4_1 (quantized by `gguf.quants`) and Q4_K / Q6_K (random blocks) —
   give the logits of an HF directory holding the weights `gguf.quants.dequantize` returns;
2. tokenizers read from GGUF metadata (`llama` with scores, `gpt2` with merges and the
   llama-bpe / qwen2 split rules) tokenize like `tokenizers` on the original tokenizer.json;
3. files zephyr writes (`export-gguf`, `quantize`) read back in `gguf.GGUFReader` with the same
   metadata, Q8_0/Q4_0/Q4_1 bytes identical to `gguf.quants.quantize`, K-quants within their
   error bound, and a re-quantization to the same type reproduces every tensor byte;
4. Q8_0 keeps perplexity within 1% of F32, Q4_0 within 5%;
5. truncated and corrupted files are clear errors, never crashes."""
import argparse, atexit, json, os, shutil, struct, subprocess, sys, tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from safetensors.numpy import save_file
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures import ZEPHYR_TEMPLATE  # noqa: E402
from corpus import corpus  # noqa: E402

# I > 2048: down_proj rows are stored in two column chunks (2048 + 256) when interleaved.
H, I, L, NH, NKV, HD = 256, 2304, 2, 4, 2, 64
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def permute(w, n_head):
    """llama.cpp's convert_hf_to_gguf permutation of q/k rows (rotary halves interleaved)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_weights(rng, V):
    t = {"model.embed_tokens.weight": rng.standard_normal((V, H)) * 0.5, "model.norm.weight": 1 + 0.1 * rng.standard_normal(H),
         "lm_head.weight": rng.standard_normal((V, H)) * 0.1}
    for i in range(L):
        p = f"model.layers.{i}."
        t.update({p + "self_attn.q_proj.weight": rng.standard_normal((NH * HD, H)) * 0.04,
                  p + "self_attn.k_proj.weight": rng.standard_normal((NKV * HD, H)) * 0.04,
                  p + "self_attn.v_proj.weight": rng.standard_normal((NKV * HD, H)) * 0.04,
                  p + "self_attn.o_proj.weight": rng.standard_normal((H, NH * HD)) * 0.04,
                  p + "mlp.gate_proj.weight": rng.standard_normal((I, H)) * 0.04,
                  p + "mlp.up_proj.weight": rng.standard_normal((I, H)) * 0.04,
                  p + "mlp.down_proj.weight": rng.standard_normal((H, I)) * 0.04,
                  p + "input_layernorm.weight": 1 + 0.1 * rng.standard_normal(H),
                  p + "post_attention_layernorm.weight": 1 + 0.1 * rng.standard_normal(H)})
    return {k: v.astype(np.float32) for k, v in t.items()}


GGUF_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
              "lm_head.weight": "output.weight", "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
              "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
              "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down"}


def gguf_name(hf):
    if hf in GGUF_NAMES:
        return GGUF_NAMES[hf]
    _, _, i, rest = hf.split(".", 3)
    return f"blk.{i}.{GGUF_NAMES[rest[:-len('.weight')]]}.weight"


def write_hf(d, tensors, V, tok_src):
    os.makedirs(d, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "intermediate_size": I,
           "num_hidden_layers": L, "num_attention_heads": NH, "num_key_value_heads": NKV, "vocab_size": V,
           "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
           "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    for f in ("tokenizer.json", "tokenizer_config.json"):
        open(os.path.join(d, f), "w").write(open(os.path.join(tok_src, f)).read())


def spm_vocab(tok_json):
    """tokenizer.ggml.* of a sentencepiece-BPE model the way llama.cpp's converter stores one from
    tokenizer.model: pieces by id, token types, and scores that order merges as the model does
    (tokenizer.json's merges were derived from those scores, so their order gives them back)."""
    doc = json.load(open(tok_json))
    vocab = doc["model"]["vocab"]
    rank = {}
    for r, m in enumerate(doc["model"]["merges"]):
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        rank.setdefault(a + b, r)
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    special = {a["id"] for a in doc["added_tokens"] if a["special"]}
    types, scores = [], []
    for i, t in enumerate(tokens):
        if t == "<unk>":
            types.append(2)
        elif i in special:
            types.append(3)
        elif len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            types.append(6)
        else:
            types.append(1)
        scores.append(0.0 if types[-1] != 1 or t not in rank else -float(rank[t] + 1))
    return tokens, scores, types


def write_gguf(path, tensors_by_gguf_name, tok_json, extra=None, tokenizer="llama"):
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(4096)
    w.add_embedding_length(H)
    w.add_block_count(L)
    w.add_feed_forward_length(I)
    w.add_rope_dimension_count(HD)
    w.add_head_count(NH)
    w.add_head_count_kv(NKV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    if tokenizer == "llama":
        tokens, scores, types = spm_vocab(tok_json)
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
        w.add_chat_template(ZEPHYR_TEMPLATE)
    for k, v in (extra or {}).items():
        v(w)
    for name, (arr, raw_dtype) in tensors_by_gguf_name.items():
        w.add_tensor(name, arr, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def int8_rows(x):
    """Activations as zephyr's integer kernels see them: per 32 values, scale max|x|/127, rounded."""
    b = x.reshape(-1, 32)
    d = np.abs(b).max(1, keepdims=True) / 127
    return (np.round(b / np.where(d == 0, 1, d)) * d).reshape(-1)


def numpy_first_token_logits(w, tok, quantized):
    """An independent forward pass for one token at position 0 (attention = its own v), with
    the activations rounded to int8 before each matmul when the weights are block-quantized."""
    f = int8_rows if quantized else (lambda v: v)

    def rms(x, g):
        return x / np.sqrt((x ** 2).mean() + 1e-5) * g
    x = w["model.embed_tokens.weight"][tok].astype(np.float64)
    for i in range(L):
        p = f"model.layers.{i}."
        v = w[p + "self_attn.v_proj.weight"] @ f(rms(x, w[p + "input_layernorm.weight"]))
        attn = np.concatenate([v[(h // (NH // NKV)) * HD:(h // (NH // NKV) + 1) * HD] for h in range(NH)])
        x = x + w[p + "self_attn.o_proj.weight"] @ f(attn)
        xn = f(rms(x, w[p + "post_attention_layernorm.weight"]))
        g, u = w[p + "mlp.gate_proj.weight"] @ xn, w[p + "mlp.up_proj.weight"] @ xn
        x = x + w[p + "mlp.down_proj.weight"] @ f(g / (1 + np.exp(-g)) * u)
    return w["lm_head.weight"] @ f(rms(x, w["model.norm.weight"]))


def zephyr_logits(z, model, ids, tmp):
    out = os.path.join(tmp, "logits.bin")
    subprocess.run([z, "debug", "logits", "-m", model, "--ids", " ".join(map(str, ids)), "-o", out], check=True,
                   capture_output=True)
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)


def random_k_blocks(rng, qtype, rows, cols):
    """Random Q4_K / Q6_K blocks with sane f16 scales (the bytes themselves are arbitrary)."""
    bsize, tsize = gguf.GGML_QUANT_SIZES[qtype]
    nb = rows * cols // bsize
    raw = rng.integers(0, 256, size=(nb, tsize), dtype=np.uint8)
    if qtype == QT.Q4_K:
        raw[:, 0:2] = np.frombuffer(np.full(nb, 0.002, np.float16).tobytes(), np.uint8).reshape(nb, 2)
        raw[:, 2:4] = np.frombuffer(np.full(nb, 0.001, np.float16).tobytes(), np.uint8).reshape(nb, 2)
    else:
        raw[:, 192:208] = rng.integers(-20, 20, size=(nb, 16), dtype=np.int8).view(np.uint8)
        raw[:, 208:210] = np.frombuffer(np.full(nb, 0.0002, np.float16).tobytes(), np.uint8).reshape(nb, 2)
    return raw.reshape(rows, cols // bsize * tsize)


def tokenize(z, model, texts):
    p = subprocess.run([z, "tokenize", "-m", model], input="".join(json.dumps({"text": t}) + "\n" for t in texts),
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    return [json.loads(l)["ids"] for l in p.stdout.splitlines()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    ap.add_argument("--models", required=True)
    a = ap.parse_args()
    z = a.zephyr
    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp(prefix="zephyr-gguf-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # left behind, ~1 GB per run filled the disk
    tokdir = os.path.join(tmp, "tok")
    os.makedirs(tokdir)
    tok_json = os.path.join(a.models, "tokenizer-llama2", "models", "tokenizer.json")
    open(os.path.join(tokdir, "tokenizer.json"), "w").write(open(tok_json).read())
    json.dump({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True, "chat_template": ZEPHYR_TEMPLATE},
              open(os.path.join(tokdir, "tokenizer_config.json"), "w"))
    V = len(json.load(open(tok_json))["model"]["vocab"])
    hf = hf_weights(rng, V)
    ids = [1] + list(rng.integers(3, V, size=40))

    # 1. GGUFs written by gguf-py vs HF directories of the dequantized weights.
    for variant in ("F32", "Q8_0", "Q4_0", "Q4_1", "K"):
        gg, deq = {}, {}
        for name, w in hf.items():
            g = gguf_name(name)
            stored = permute(w, NH) if "q_proj" in name else permute(w, NKV) if "k_proj" in name else w
            if w.ndim == 1 or variant == "F32":
                gg[g] = (stored, None)
                deq[name] = w
                continue
            if variant == "K":
                qt = QT.Q6_K if ("down_proj" in name or name == "lm_head.weight") else QT.Q4_K
                q = random_k_blocks(rng, qt, *stored.shape)
            else:
                qt = QT[variant]
                q = gguf.quants.quantize(stored, qt)
            gg[g] = (q, qt)
            d = gguf.quants.dequantize(q, qt).reshape(stored.shape).astype(np.float32)
            deq[name] = unpermute(d, NH) if "q_proj" in name else unpermute(d, NKV) if "k_proj" in name else d
        path = os.path.join(tmp, f"gguf-py-{variant}.gguf")
        write_gguf(path, gg, tok_json)
        ref_dir = os.path.join(tmp, f"hf-{variant}")
        write_hf(ref_dir, deq, V, tokdir)
        # Whole sequences: the quantized file differs from its dequantized HF twin only by the
        # int8 rounding of activations (checked exactly below), a few % of the logits' spread.
        got, want = zephyr_logits(z, path, ids, tmp), zephyr_logits(z, ref_dir, ids, tmp)
        err = float(np.abs(got - want).max())
        tol = 1e-4 if variant == "F32" else 0.1 * float(want.std())
        check(err <= tol, f"gguf-py {variant} file: logits of {len(ids)} tokens vs HF dir of gguf.quants-dequantized weights, max |d| {err:.2e} (tol {tol:.2e})")
        worst = 0.0
        for tok in (1, 500, 12345):
            sim = numpy_first_token_logits(deq, tok, variant != "F32")
            worst = max(worst, float(np.abs(zephyr_logits(z, path, [tok], tmp)[0] - sim).max()))
        check(worst <= 1e-4, f"gguf-py {variant} file: first-token logits = numpy forward (gguf.quants-dequantized weights, int8 activations), max |d| {worst:.1e}")

    # 2. Tokenizers from GGUF metadata.
    texts = corpus()[:400]
    ref = Tokenizer.from_file(tok_json)
    want = [[1] + ref.encode(t, add_special_tokens=False).ids for t in texts]
    got = tokenize(z, os.path.join(tmp, "gguf-py-F32.gguf"), texts)
    bad = [t for t, g, w in zip(texts, got, want) if g != w]
    check(not bad, f"llama (sentencepiece) GGUF tokenizer = tokenizers on tokenizer.json, {len(texts)} texts" +
          (f"; first mismatch {bad[0]!r}" if bad else ""))
    for pkg, pre in (("tokenizer-llama3", "llama-bpe"), ("tokenizer-qwen3", "qwen2")):
        tj = os.path.join(a.models, pkg, "models", "tokenizer.json")
        doc = json.load(open(tj))
        vocab = doc["model"]["vocab"]
        n = max(max(vocab.values()), max(t["id"] for t in doc["added_tokens"])) + 1
        tokens = [f"[PAD{i}]" for i in range(n)]
        types = [1] * n
        for t, i in vocab.items():
            tokens[i] = t
        for t in doc["added_tokens"]:
            tokens[t["id"]] = t["content"]
            types[t["id"]] = 3 if t["special"] else 4
        merges = [m if isinstance(m, str) else " ".join(m) for m in doc["model"]["merges"]]
        path = os.path.join(tmp, f"{pkg}.gguf")

        def vocab_kv(w, tokens=tokens, types=types, merges=merges, pre=pre):
            w.add_tokenizer_model("gpt2")
            w.add_tokenizer_pre(pre)
            w.add_token_list(tokens)
            w.add_token_types(types)
            w.add_token_merges(merges)
            w.add_add_bos_token(False)
        write_gguf(path, {"token_embd.weight": (np.zeros((n, 32), np.float32), None)}, tj, {"vocab": vocab_kv}, tokenizer=None)
        ref = Tokenizer.from_file(tj)
        want = [ref.encode(t, add_special_tokens=False).ids for t in texts]
        got = tokenize(z, path, texts)
        bad = [t for t, g, w in zip(texts, got, want) if g != w]
        check(not bad, f"gpt2 GGUF tokenizer (pre {pre}, {pkg}) = tokenizers, {len(texts)} texts" +
              (f"; first mismatch {bad[0]!r}" if bad else ""))

    # 3. Files zephyr writes, read by gguf-py.
    src = os.path.join(tmp, "hf-F32")
    for t, qt in (("f32", QT.F32), ("f16", QT.F16), ("q8_0", QT.Q8_0), ("q4_0", QT.Q4_0), ("q4_1", QT.Q4_1),
                  ("q4_k", QT.Q4_K), ("q6_k", QT.Q6_K)):
        out = os.path.join(tmp, f"z-{t}.gguf")
        subprocess.run([z, "export-gguf", src, out, "--type", t], check=True, capture_output=True)
        r = gguf.GGUFReader(out)
        f = {k: r.fields[k] for k in r.fields}
        arch = bytes(f["general.architecture"].parts[-1]).decode()
        heads = int(f["llama.attention.head_count_kv"].parts[-1][0])
        ntok = len(f["tokenizer.ggml.tokens"].data)
        check(arch == "llama" and heads == NKV and ntok == V, f"export-gguf {t}: gguf-py reads architecture/heads/tokens")
        worst, exact = 0.0, True
        for rt in r.tensors:
            hfname = next(k for k in hf if gguf_name(k) == rt.name)
            w = hf[hfname]
            stored = permute(w, NH) if "q_proj" in hfname else permute(w, NKV) if "k_proj" in hfname else w
            if w.ndim == 1:
                exact &= rt.tensor_type == QT.F32 and np.array_equal(np.asarray(rt.data).reshape(w.shape), w)
                continue
            exact &= rt.tensor_type == qt
            raw = np.asarray(rt.data)
            if qt in (QT.Q8_0, QT.Q4_0, QT.Q4_1, QT.F32, QT.F16):
                want_bytes = gguf.quants.quantize(stored, qt) if qt not in (QT.F32, QT.F16) else stored.astype(
                    np.float32 if qt == QT.F32 else np.float16)
                exact &= np.array_equal(raw.reshape(-1).view(np.uint8), np.ascontiguousarray(want_bytes).reshape(-1).view(np.uint8))
            d = gguf.quants.dequantize(raw, qt).reshape(w.shape)
            worst = max(worst, float(np.abs(d - stored).max() / np.abs(stored).max()))
        bound = {"f32": 0, "f16": 1e-3, "q8_0": 0.01, "q4_0": 0.13, "q4_1": 0.14, "q4_k": 0.2, "q6_k": 0.06}[t]
        check(exact, f"export-gguf {t}: types{' and bytes (= gguf.quants.quantize)' if t in ('q8_0', 'q4_0', 'q4_1') else ''} as expected")
        check(worst <= bound, f"export-gguf {t}: gguf-py dequantizes within {bound} of the weights' range (worst {worst:.3g})")
        again = os.path.join(tmp, f"z-{t}-again.gguf")
        # The type as llama.cpp spells it (Q8_0): names are taken in either case.
        subprocess.run([z, "quantize", out, again, "--type", t.upper()], check=True, capture_output=True)
        r2 = gguf.GGUFReader(again)
        same = all(x.name == y.name and x.tensor_type == y.tensor_type and np.array_equal(np.asarray(x.data), np.asarray(y.data))
                   for x, y in zip(r.tensors, r2.tensors)) and len(r.tensors) == len(r2.tensors)
        check(same, f"quantize {t} -> {t.upper()}: every tensor byte identical")
    got, want = zephyr_logits(z, os.path.join(tmp, "z-f32.gguf"), ids, tmp), zephyr_logits(z, src, ids, tmp)
    err = float(np.abs(got - want).max())
    check(err <= 1e-4, f"export-gguf f32 then load: logits equal the HF directory's (max |d| {err:.1e})")

    # 4. Perplexity under quantization.
    text = os.path.join(tmp, "text.txt")
    open(text, "w").write(" ".join(corpus()[400:460]))

    def ppl(m):
        p = subprocess.run([z, "perplexity", "-m", m, "-f", text], capture_output=True, text=True, check=True)
        return float(p.stdout.split("perplexity:")[1].split()[0])
    base = ppl(src)
    for t, limit in (("q8_0", 0.01), ("q4_0", 0.05)):
        q = ppl(os.path.join(tmp, f"z-{t}.gguf"))
        check(abs(q / base - 1) <= limit, f"perplexity {t} {q:.3f} vs f32 {base:.3f} ({100 * (q / base - 1):+.2f}%, limit {100 * limit:.0f}%)")

    # 5. Corrupted files: errors naming the file, never a crash.
    good = open(os.path.join(tmp, "z-q4_0.gguf"), "rb").read()

    def expect_error(name, data, needle):
        path = os.path.join(tmp, name)
        open(path, "wb").write(data)
        p = subprocess.run([z, "generate", "-m", path, "-p", "hi", "-n", "1"], capture_output=True, text=True)
        ok = p.returncode == 1 and path in p.stderr and needle in p.stderr
        check(ok, f"{name}: exit 1 with '{needle}' ({p.stderr.strip()[:150]!r}, rc {p.returncode})")
    expect_error("truncated-header.gguf", good[:20], "truncated")
    expect_error("truncated-metadata.gguf", good[:2000], "truncated")
    expect_error("truncated-data.gguf", good[:len(good) - 1000], "beyond the end of the file")
    expect_error("absurd-count.gguf", good[:16] + struct.pack("<Q", 1 << 60) + good[24:], "more than the file can hold")
    expect_error("version-1.gguf", good[:4] + struct.pack("<I", 1) + good[8:], "version 1")
    expect_error("not-gguf.gguf", b"GGUX" + good[4:], "not a GGUF file")
    # The first tensor's type and offset fields: found by parsing with gguf-py.
    r = gguf.GGUFReader(os.path.join(tmp, "z-q4_0.gguf"))
    t0 = r.tensors[0]
    name_at = good.find(struct.pack("<Q", len(t0.name)) + t0.name.encode())
    type_at = name_at + 8 + len(t0.name) + 4 + 8 * len(t0.shape)
    bad_type = bytearray(good)
    struct.pack_into("<I", bad_type, type_at, 13)  # Q5_K: a real ggml type zephyr does not compute with
    expect_error("unsupported-type.gguf", bytes(bad_type), "Q5_K")
    struct.pack_into("<I", bad_type, type_at, 999)
    expect_error("unknown-type.gguf", bytes(bad_type), "unknown type 999")
    bad_off = bytearray(good)
    struct.pack_into("<Q", bad_off, type_at + 4, 1 << 50)
    expect_error("bad-offset.gguf", bytes(bad_off), "beyond the end of the file")
    # gguf-py and llama.cpp take any power of two; below 8 (the spec's multiple of 8) a tensor's
    # blocks could sit at an address their fp16 scales cannot be read from.
    small = os.path.join(tmp, "alignment-4.gguf")
    write_gguf(small, {"token_embd.weight": (np.zeros((8, 32), np.float32), None)}, None,
               {"alignment": lambda w: w.add_custom_alignment(4)}, tokenizer=None)
    expect_error("alignment-4.gguf", open(small, "rb").read(), "power of two of at least 8")

    print(f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

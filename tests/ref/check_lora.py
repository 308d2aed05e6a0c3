"""LoRA against Hugging Face peft on transformers' MistralForCausalLM / LlamaForCausalLM (PyTorch):
peft's adapters (random A and B, several target sets, rsLoRA, lm_head on a tied model) load in
zephyr (`--lora`, HF and GGUF bases) with peft's logits; zephyr's adapter gradients equal autograd's
through peft's modules; an adapter zephyr trains loads in peft with the same logits, leaves the base's
bytes alone, resumes bit-identically (dropout on) and merges (`zephyr merge`, HF and GGUF) into a model
with the same logits; DPO with adapters starts at loss log 2 with the base as its reference. Run with
the peft venv's python (tests/ref/setup.sh: Debian's torch, transformers 4.44, peft 0.12)."""
import argparse
import atexit
import hashlib
import http.client
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

try:
    import numpy as np
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM
except ImportError as e:
    print(f"skipped: {e} (make refs installs the peft references)")
    sys.exit(77)

Z = None
TMP = None
failures = 0


def run(*args, **kw):
    p = subprocess.run([Z, *map(str, args)], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"zephyr {' '.join(map(str, args))} failed:\n{p.stderr}")
    return p


def check(ok, what):
    global failures
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)


def zephyr_logits(model, ids, lora=None):
    out = os.path.join(TMP, "logits.bin")
    run("debug", "logits", "-m", model, "--ids", " ".join(map(str, ids)), "-o", out, *(["--lora", lora] if lora else []))
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)


def hf_model(path):
    return AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager").eval()


def peft_logits(base, adapter, ids):
    m = PeftModel.from_pretrained(hf_model(base), adapter).eval()
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].numpy()


def rel_err(a, b):
    return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))


def init_model(name, *flags, hidden=32):
    path = os.path.join(TMP, name)
    run("init", "-o", path, "--hidden", hidden, "--layers", 2, "--heads", 4, "--kv-heads", 2, "--intermediate", 48, "--vocab", 64,
        "--seed", 3, *flags)
    return path


def make_peft_adapter(base, name, targets, rslora=False, seed=0):
    torch.manual_seed(seed)
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, use_rslora=rslora,
                     init_lora_weights=False, task_type="CAUSAL_LM")  # random B: the adapter changes the logits
    m = get_peft_model(hf_model(base), cfg)
    path = os.path.join(TMP, name)
    m.save_pretrained(path, safe_serialization=True)
    return path


def rows(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        ids = [int(i) for i in rng.integers(0, 64, 6 + 3 * k)]
        out.append({"input_ids": ids, "labels": [-100] * 3 + ids[3:]})
    return out


def write_jsonl(name, items):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.writelines(json.dumps(x) + "\n" for x in items)
    return path


def peft_grads(base, adapter, batch):
    """Mean next-token loss over every labelled token of the batch and the adapter's gradients."""
    m = PeftModel.from_pretrained(hf_model(base), adapter, is_trainable=True)
    m.train()
    total, count = 0.0, 0
    for r in batch:
        logits = m(torch.tensor([r["input_ids"]])).logits[0]
        target = torch.tensor(r["labels"][1:] + [-100])
        total = total + torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="sum")
        count += int((target != -100).sum())
    loss = total / count
    loss.backward()
    grads = {n.replace(".default", ""): p.grad.numpy() for n, p in m.named_parameters() if p.requires_grad}
    return float(loss), grads


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()

def serve(model, *flags):
    """Starts `zephyr serve` on a free port; returns the process and a POST/GET helper."""
    p = subprocess.Popen([Z, "serve", "-m", model, "--port", "0", "--parallel", "4", *flags], stderr=subprocess.PIPE, text=True)
    lines = []
    while True:
        line = p.stderr.readline()
        lines.append(line)
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if m or not line:
            break
    if not m:
        p.kill()
        sys.exit(f"zephyr serve did not start:\n{''.join(lines)}{p.stderr.read()}")
    threading.Thread(target=p.stderr.read, daemon=True).start()
    port = int(m.group(1))

    def call(path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST" if body is not None else "GET", path, json.dumps(body) if body is not None else None,
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        out = (r.status, json.loads(r.read()))
        c.close()
        return out
    return p, call


def peft_greedy(model, ids, n):
    """n greedy tokens and each one's log-probability, from a transformers (or peft) model."""
    ids, lps = list(ids), []
    with torch.no_grad():
        for _ in range(n):
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].double(), -1)
            ids.append(int(logp.argmax()))
            lps.append(float(logp.max()))
    return lps


def check_served_adapters(base, adapter_a, adapter_b):
    prompt = [int(i) for i in np.random.default_rng(12).integers(3, 200, 12)]
    want = {"qbase": peft_greedy(hf_model(base), prompt, 8)}
    for name, path in (("all", adapter_a), ("qv", adapter_b)):
        want[name] = peft_greedy(PeftModel.from_pretrained(hf_model(base), path).eval(), prompt, 8)
    gguf = os.path.join(TMP, "qbase-f32.gguf")
    run("export-gguf", base, gguf, "--type", "f32")
    for label, model in (("an HF base", base), ("its f32 GGUF", gguf)):
        p, call = serve(model, "--model-name", "qbase", "--lora", f"all={adapter_a}", "--lora", f"qv={adapter_b}")
        try:
            status, models = call("/v1/models")
            ids = [(m["id"], m.get("parent")) for m in models["data"]]
            check(status == 200 and ids == [("qbase", None), ("all", "qbase"), ("qv", "qbase")],
                  f"serve --lora NAME=DIR x2 on {label}: /v1/models lists {ids}")

            def complete(name, temperature=0.0, seed=0):
                status, r = call("/v1/completions", {"model": name, "prompt": prompt, "max_tokens": 8, "temperature": temperature,
                                                     "seed": seed, "logprobs": 1, "ignore_eos": True})
                if status != 200:
                    sys.exit(f"/v1/completions for {name}: {status} {r}")
                return r["model"], r["choices"][0]["text"], r["choices"][0]["logprobs"]["token_logprobs"]
            worst = 0.0
            for name, lps in want.items():
                got_name, _, got = complete(name)
                worst = max(worst, max(abs(a - b) for a, b in zip(got, lps)) if len(got) == len(lps) else 1.0)
                check(got_name == name, f"  a completion for {name} says model {got_name}")
            differ = min(max(abs(a - b) for a, b in zip(want[n], want["qbase"])) for n in ("all", "qv"))
            check(worst < 1e-4 and differ > 1e-2, f"  greedy completions through the base and each adapter follow peft's greedy tokens: "
                                f"log-probs within {worst:.1e} (the adapters move them by >= {differ:.2f})")
            # Mixed concurrent requests (sampled) get exactly what each gets alone.
            jobs = [(name, 0.9, 40 + k) for k, name in enumerate(["all", "qv", "qbase", "all", "qv", "qbase", "all", "qv"])]
            alone = [complete(*j) for j in jobs]
            with ThreadPoolExecutor(len(jobs)) as ex:
                together = list(ex.map(lambda j: complete(*j), jobs))
            check(together == alone and len({a[1] for a in alone}) > 3,
                  f"  {len(jobs)} concurrent sampled requests over the base and both adapters get their solo text and log-probs")
            status, err = call("/v1/completions", {"model": "nope", "prompt": prompt, "max_tokens": 2})
            msg = err.get("error", {}).get("message", "")
            check(status == 404 and "'qbase', 'all', 'qv'" in msg, f"  an unknown model is a 404 naming those served: {msg}")
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(30)
    for flags, expect in ((["--lora", f"a={adapter_a}", "--lora", f"a={adapter_b}"], "two adapters are named 'a'"),
                          (["--model-name", "x", "--lora", f"x={adapter_a}", "--lora", f"y={adapter_b}"], "the base model's name"),
                          (["--lora", f"a={adapter_a}", "--lora", f"b={os.path.join(TMP, 'peft-0')}"], "another model")):
        p = subprocess.run([Z, "serve", "-m", base, "--port", "0", *flags], capture_output=True, text=True, timeout=60)
        last = p.stderr.strip().splitlines()[-1:]
        check(p.returncode == 1 and last and expect in last[0], f"  refused: {last[0] if last else '(nothing)'}")



def main():
    global Z, TMP
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    Z = ap.parse_args().zephyr
    TMP = tempfile.mkdtemp(prefix="zephyr-lora-")
    atexit.register(shutil.rmtree, TMP, ignore_errors=True)
    ids = [1, 5, 9, 2, 33, 60, 7, 7, 12, 40]

    # 1. peft's adapters load here with peft's logits (HF and GGUF bases).
    mistral = init_model("mistral")
    llama_tied = init_model("llama-tied", "--arch", "llama", "--tie-embeddings")
    all_linear = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    cases = [("mistral", mistral, ["q_proj", "v_proj"], False), ("mistral", mistral, all_linear, True),
             ("llama tied", llama_tied, all_linear + ["lm_head"], False)]
    for k, (label, base, targets, rslora) in enumerate(cases):
        adapter = make_peft_adapter(base, f"peft-{k}", targets, rslora, seed=k)
        want = peft_logits(base, adapter, ids)
        got = zephyr_logits(base, ids, adapter)
        plain = zephyr_logits(base, ids)
        err = rel_err(got, want)
        check(err < 1e-5 and rel_err(plain, want) > 1e-3,
              f"peft adapter on {label} ({'+'.join(targets) if len(targets) < 7 else 'all-linear' + ('+lm_head' if len(targets) > 7 else '')}"
              f"{', rsLoRA' if rslora else ''}) loads with peft's logits: relative error {err:.1e}")
        gguf = os.path.join(TMP, f"base-{k}.gguf")
        run("export-gguf", base, gguf, "--type", "f32")
        err = rel_err(zephyr_logits(gguf, ids, adapter), want)
        check(err < 1e-5, f"  the same adapter on the base's GGUF: relative error {err:.1e}")

    # 2. Adapter gradients against autograd through peft's modules.
    batch = rows(3, 1)
    data = write_jsonl("rows.jsonl", batch)
    for k in range(len(cases)):
        base, adapter = cases[k][1], os.path.join(TMP, f"peft-{k}")
        out = os.path.join(TMP, f"grads-{k}.safetensors")
        got_loss = json.loads(run("debug", "sft-grads", "-m", base, "--lora", adapter, "--data", data, "-o", out).stdout)["loss"]
        want_loss, want = peft_grads(base, adapter, batch)
        got = load_file(out)
        worst = max(rel_err(got[n], g) for n, g in want.items())
        same_names = set(got) == set(want)
        check(same_names and abs(got_loss - want_loss) < 1e-5 * abs(want_loss) and worst < 1e-4,
              f"adapter gradients ({cases[k][0]}, {len(want)} tensors) match autograd: loss {got_loss:.6f} vs {want_loss:.6f}, "
              f"worst relative error {worst:.1e}")

    # 3. Training: peft format, base untouched, peft loads it, resume is bit-identical.
    base_hash = sha(os.path.join(mistral, "model.safetensors"))
    train = write_jsonl("train.jsonl", rows(8, 2))
    common = ["--model_name_or_path", mistral, "--dataset_path", train, "--use_peft", "true", "--lora_r", 8,
              "--lora_alpha", 16, "--lora_dropout", 0.1, "--lora_target_modules", "all-linear", "--learning_rate", 0.01,
              "--per_device_train_batch_size", 2, "--max_steps", 4, "--save_steps", 2, "--logging_steps", 1, "--seed", 7]
    out = os.path.join(TMP, "sft-lora")
    run("sft", "--output_dir", out, *common)
    files = sorted(os.listdir(out))
    check("adapter_config.json" in files and "adapter_model.safetensors" in files and "model.safetensors" not in files
          and sha(os.path.join(mistral, "model.safetensors")) == base_hash,
          f"LoRA SFT writes peft's files ({', '.join(f for f in files if f.startswith('adapter'))}), not a model; the base's bytes are unchanged")
    tensors = load_file(os.path.join(out, "adapter_model.safetensors"))
    check(len(tensors) == 2 * 7 * 2 and all(n.startswith("base_model.model.model.layers.") for n in tensors)
          and any(np.abs(t).max() > 0 for n, t in tensors.items() if "lora_B" in n),
          f"{len(tensors)} adapter tensors under peft's names, B trained away from zero")
    want = peft_logits(mistral, out, ids)
    err = rel_err(zephyr_logits(mistral, ids, out), want)
    err_dir = rel_err(zephyr_logits(out, ids), want)
    check(err < 1e-5 and err_dir < 1e-5,
          f"the trained adapter loads in peft with zephyr's logits: relative error {err:.1e} (-m BASE --lora), {err_dir:.1e} (-m ADAPTER)")
    resumed = os.path.join(TMP, "sft-resumed")
    os.makedirs(resumed)
    shutil.copytree(os.path.join(out, "checkpoint-2"), os.path.join(resumed, "checkpoint-2"))
    run("sft", "--output_dir", resumed, "--resume", *common)
    check(sha(os.path.join(resumed, "adapter_model.safetensors")) == sha(os.path.join(out, "adapter_model.safetensors")),
          "resuming from checkpoint-2 ends bit-identical to the uninterrupted run (dropout 0.1)")

    # 4. Merge: HF directory and GGUF, the same logits as base + adapter.
    merged = os.path.join(TMP, "merged")
    run("merge", mistral, out, merged)
    err = rel_err(zephyr_logits(merged, ids), want)
    with torch.no_grad():
        err_hf = rel_err(hf_model(merged)(torch.tensor([ids])).logits[0].numpy(), want)
    merged_gguf = os.path.join(TMP, "merged.gguf")
    run("merge", mistral, out, merged_gguf, "--gguf", "f32")
    err_gguf = rel_err(zephyr_logits(merged_gguf, ids), want)
    check(err < 1e-5 and err_hf < 1e-5 and err_gguf < 1e-5,
          f"zephyr merge gives peft's logits: relative error {err:.1e} (zephyr), {err_hf:.1e} (transformers), {err_gguf:.1e} (GGUF f32)")
    tied_adapter = os.path.join(TMP, "peft-2")
    p = subprocess.run([Z, "merge", llama_tied, tied_adapter, os.path.join(TMP, "merged-tied")], capture_output=True, text=True)
    check(p.returncode == 1 and "ties" in p.stderr and not os.path.exists(os.path.join(TMP, "merged-tied")),
          f"merging an lm_head adapter into a tied model is refused: {p.stderr.strip()}")

    # 5. DPO with adapters: the reference is the base (adapters off), so step 1 starts at log 2.
    rng = np.random.default_rng(4)
    pairs = []
    for _ in range(4):
        prompt = [int(i) for i in rng.integers(0, 64, 4)]
        c, r = [int(i) for i in rng.integers(0, 64, 5)], [int(i) for i in rng.integers(0, 64, 6)]
        pairs.append({"chosen_input_ids": prompt + c, "chosen_labels": [-100] * 4 + c,
                      "rejected_input_ids": prompt + r, "rejected_labels": [-100] * 4 + r})
    dpo_out = os.path.join(TMP, "dpo-lora")
    p = run("dpo", "--model_name_or_path", mistral, "--dataset_path", write_jsonl("pairs.jsonl", pairs), "--output_dir", dpo_out,
            "--use_peft", "true", "--lora_target_modules", "q_proj,v_proj", "--per_device_train_batch_size", 2, "--max_steps", 2,
            "--logging_steps", 1, "--learning_rate", 0.05)
    first = json.loads(open(os.path.join(dpo_out, "metrics.jsonl")).readline())
    check(abs(first["loss"] - math.log(2)) < 1e-7 and first["rewards/margins"] == 0 and "adapters off" in p.stderr
          and os.path.exists(os.path.join(dpo_out, "adapter_model.safetensors")),
          f"DPO with adapters: step 1 loss {first['loss']!r} = log 2, reference = the base with adapters off")

    # 6. QLoRA: a frozen quantized base trains exactly as LoRA on its dequantized weights.
    tiny_tok = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes", "smol", "tiny_tokenizer")
    qbase = os.path.join(TMP, "qbase")
    run("init", "-o", qbase, "--hidden", 64, "--layers", 2, "--heads", 4, "--kv-heads", 2, "--intermediate", 96, "--seed", 5,
        "--tokenizer", tiny_tok)
    vocab = json.load(open(os.path.join(qbase, "config.json")))["vocab_size"]
    qadapter = make_peft_adapter(qbase, "peft-q", all_linear, seed=9)
    rng = np.random.default_rng(8)
    qrows = []
    for k in range(4):
        q_ids = [int(i) for i in rng.integers(0, vocab, 40 + 8 * k)]  # past 32 tokens: the GEMM paths
        qrows.append({"input_ids": q_ids, "labels": [-100] * 4 + q_ids[4:]})
    qdata = write_jsonl("qrows.jsonl", qrows)
    qtrain = ["--dataset_path", qdata, "--use_peft", "true", "--lora_target_modules", "all-linear", "--lora_dropout", 0,
              "--learning_rate", 0.01, "--per_device_train_batch_size", 2, "--max_steps", 3, "--logging_steps", 1]
    for qtype in ("q4_0", "q8_0"):
        gguf_base, deq = os.path.join(TMP, f"{qtype}.gguf"), os.path.join(TMP, f"deq-{qtype}")
        run("quantize", qbase, gguf_base, "--type", qtype)
        run("export-hf", gguf_base, deq)
        g = []
        for base in (gguf_base, deq):
            out = os.path.join(TMP, f"qg-{len(g)}.safetensors")
            loss = json.loads(run("debug", "sft-grads", "-m", base, "--lora", qadapter, "--data", qdata, "-o", out).stdout)["loss"]
            g.append((loss, load_file(out)))
        worst = max(rel_err(g[0][1][n], t) for n, t in g[1][1].items())
        adapters = []
        for base in (gguf_base, deq):
            out = os.path.join(TMP, f"qlora-{qtype}-{len(adapters)}")
            run("sft", "--model_name_or_path", base, "--output_dir", out, *qtrain)
            adapters.append(load_file(os.path.join(out, "adapter_model.safetensors")))
        trained = max(rel_err(adapters[0][n], t) for n, t in adapters[1].items())
        check(abs(g[0][0] - g[1][0]) <= 1e-6 * abs(g[1][0]) and worst < 1e-5 and trained < 1e-5,
              f"QLoRA on a {qtype} GGUF = LoRA on its dequantized weights: loss {g[0][0]:.6f} vs {g[1][0]:.6f}, gradients "
              f"{worst:.1e}, adapters after 3 steps {trained:.1e}")
    # load_in_4bit quantizes the HF base's linear layers to Q4_0; the reference quantizes them with
    # the gguf package (llama.cpp's own Python quantizer) and trains LoRA on the dequantized copy.
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize
    from safetensors.numpy import save_file
    fake = os.path.join(TMP, "fake-q4_0")
    shutil.copytree(qbase, fake)
    w = load_file(os.path.join(qbase, "model.safetensors"))
    for n, t in w.items():
        if t.ndim == 2 and "embed_tokens" not in n:
            w[n] = dequantize(quantize(t, GGMLQuantizationType.Q4_0), GGMLQuantizationType.Q4_0).astype(np.float32)
    save_file(w, os.path.join(fake, "model.safetensors"), metadata={"format": "pt"})
    adapters = []
    for base, extra in ((qbase, ["--load_in_4bit", "true"]), (fake, [])):
        out = os.path.join(TMP, f"bit4-{len(adapters)}")
        p = run("sft", "--model_name_or_path", base, "--output_dir", out, *qtrain, *extra)
        adapters.append(load_file(os.path.join(out, "adapter_model.safetensors")))
    trained = max(rel_err(adapters[0][n], t) for n, t in adapters[1].items())
    check(trained < 1e-5, f"load_in_4bit = LoRA on the base quantized to Q4_0 by the gguf package: adapters after 3 steps {trained:.1e}")

    # 9. Several adapters beside one base in the server, picked by the request's model name.
    check_served_adapters(qbase, qadapter, make_peft_adapter(qbase, "peft-q2", ["q_proj", "v_proj", "lm_head"], True, seed=10))

    # 7. Adapters that cannot be used end in one clear error line.
    good = os.path.join(TMP, "peft-0")

    def variant(name, config=None, drop_weights=False):
        d = os.path.join(TMP, name)
        shutil.copytree(good, d)
        if config:
            c = json.load(open(os.path.join(d, "adapter_config.json")))
            c.update(config)
            json.dump(c, open(os.path.join(d, "adapter_config.json"), "w"))
        if drop_weights:
            os.remove(os.path.join(d, "adapter_model.safetensors"))
        return d

    bad = [(variant("dora", {"use_dora": True}), mistral, "DoRA"),
           (variant("pattern", {"rank_pattern": {"q_proj": 8}}), mistral, "per-module"),
           (variant("noweights", drop_weights=True), mistral, "adapter_model.safetensors: missing"),
           (variant("rank", {"r": 5}), mistral, "r is 5"),
           (good, init_model("wider", hidden=48), "another model"),
           (os.path.join(TMP, "nowhere"), mistral, "adapter_config.json")]
    for adapter, base, expect in bad:
        p = subprocess.run([Z, "debug", "logits", "-m", base, "--ids", "1 2", "-o", os.path.join(TMP, "x.bin"), "--lora", adapter],
                           capture_output=True, text=True)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 1 and len(lines) == 1 and expect in lines[0], f"refused: {lines[-1] if lines else '(nothing)'}")

    # 8. Recipes that cannot train end in one clear error line, before any work.
    for args, expect in ((["--use_peft", "true", "--lora_target_modules", "embed_tokens"], "embed_tokens"),
                         (["--use_peft", "true", "--lora_target_modules", "qproj"], "'qproj' is not a linear layer"),
                         (["--use_peft", "true", "--lora_r", 0], "lora_r must be at least 1"),
                         (["--load_in_4bit", "true"], "use_peft: true"),
                         (["--use_peft", "true", "--lora_modules_to_save", "lm_head"], "not supported"),
                         (["--model_name_or_path", os.path.join(TMP, "q4_0.gguf")], "export-hf")):
        p = subprocess.run([Z, "sft", "--model_name_or_path", mistral, "--dataset_path", train, "--output_dir",
                            os.path.join(TMP, "never"), *map(str, args)], capture_output=True, text=True)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 1 and len(lines) == 1 and expect in lines[0] and not os.path.exists(os.path.join(TMP, "never")),
              f"refused: {lines[-1] if lines else '(nothing)'}")

    if failures:
        sys.exit(f"{failures} LoRA checks failed")
    print("LoRA matches peft")


if __name__ == "__main__":
    main()

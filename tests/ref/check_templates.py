"""Compares `zephyr template` with transformers' apply_chat_template (Python Jinja2, the
original) byte for byte, on the templates of real checkpoints. Errors (raise_exception) must
agree too: both fail, and ours names the template line and column. Then the one rule from a
conversation to ids (`zephyr tokenize --chat`, what generation feeds and training trains on):
tokenizer(apply_chat_template(..., tokenize=False)) as the model cards' pipelines do, without the
tokenizer's BOS when the rendered text already starts with it (never a doubled BOS). The text's
ids come from the `tokenizers` library on the model's tokenizer.json, as transformers 4 (Zephyr's
era) tokenized: transformers 5 rebuilds Llama tokenizers with a Metaspace pre-tokenizer that adds
no "▁" before a segment that already starts with a space ("</s> [INST]"), unlike tokenizer.json's
Prepend normalizer."""
import argparse, json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(__file__))
from templates import TEMPLATES, CONVERSATIONS  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

failures = 0


def model_dir(tmp, name, base_dir, template):
    d = os.path.join(tmp, name.replace("/", "_"))
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(base_dir, "tokenizer.json"), d)
    cfg = json.load(open(os.path.join(base_dir, "tokenizer_config.json")))
    if template is not None:
        cfg["chat_template"] = template
    json.dump(cfg, open(os.path.join(d, "tokenizer_config.json"), "w"), ensure_ascii=False)
    return d


def check(zephyr, name, d):
    global failures
    hf = AutoTokenizer.from_pretrained(d)
    ok = 0
    for i, conv in enumerate(CONVERSATIONS):
        for gen in (False, True):
            try:
                want, want_err = hf.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen), None
            except Exception as e:  # jinja2 TemplateError from raise_exception
                want, want_err = None, str(e)
            args = [zephyr, "template", "-m", d] + (["--add-generation-prompt"] if gen else [])
            p = subprocess.run(args, input=json.dumps({"messages": conv}) + "\n", capture_output=True, text=True)
            if want_err is not None:
                good = p.returncode != 0 and want_err in p.stderr and "line " in p.stderr and len(p.stderr.strip().splitlines()) == 1
                if not good:
                    failures += 1
                    print(f"FAIL {name} conv {i} gen={gen}: transformers raised {want_err!r}, zephyr rc={p.returncode} {p.stderr!r}")
                    continue
            elif p.returncode != 0 or p.stdout != want:
                failures += 1
                print(f"FAIL {name} conv {i} gen={gen}\n  zephyr {p.stdout!r}\n  hf     {want!r}\n  stderr {p.stderr!r}")
                continue
            ok += 1
    print(f"{'ok  ' if ok == 2 * len(CONVERSATIONS) else 'FAIL'} {name}: {ok}/{2 * len(CONVERSATIONS)} renderings match")
    check_chat_ids(zephyr, name, d, hf)


def check_chat_ids(zephyr, name, d, hf):
    global failures
    tk = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    leading = hf("")["input_ids"]  # the specials tokenizer(text) puts before any text (BOS when add_bos_token)
    for gen in (False, True):
        convs, want = [], []
        for conv in CONVERSATIONS:
            try:
                text = hf.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
            except Exception:
                continue
            own_bos = hf.bos_token is not None and text.startswith(hf.bos_token)
            convs.append(conv)
            want.append(([] if own_bos else leading) + tk.encode(text, add_special_tokens=False).ids)
        args = [zephyr, "tokenize", "--chat", "-m", d] + (["--add-generation-prompt"] if gen else [])
        p = subprocess.run(args, input="".join(json.dumps({"messages": c}) + "\n" for c in convs), capture_output=True, text=True)
        got = [json.loads(line)["ids"] for line in p.stdout.splitlines()] if p.returncode == 0 else None
        if got != want:
            failures += 1
            bad = [i for i in range(len(want)) if got is None or i >= len(got) or got[i] != want[i]]
            print(f"FAIL {name} tokenize --chat gen={gen}: {len(bad)} of {len(want)} differ; first {bad[:1]}: "
                  f"zephyr {got[bad[0]][:12] if got and bad[0] < len(got) else p.stderr!r} hf {want[bad[0]][:12]}")
        else:
            print(f"ok   {name}: tokenize --chat gen={gen}: {len(want)} conversations, ids match")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    ap.add_argument("--models", required=True, help="node_modules/@lenml")
    args = ap.parse_args()
    llama2 = os.path.join(args.models, "tokenizer-llama2", "models")
    tmp = tempfile.mkdtemp(prefix="zephyr-tmpl-")
    try:
        for name, template in TEMPLATES:
            check(args.zephyr, name, model_dir(tmp, name, llama2, template))
        # The templates as shipped in real tokenizer_config.json files.
        for t in ("llama3", "qwen3"):
            check(args.zephyr, f"{t} (shipped tokenizer_config.json)", os.path.join(args.models, f"tokenizer-{t}", "models"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{failures} renderings differ")
        sys.exit(1)
    print("all chat templates match transformers")


if __name__ == "__main__":
    main()

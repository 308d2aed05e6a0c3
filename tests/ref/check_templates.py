"""Compares `zephyr template` with transformers' apply_chat_template (Python Jinja2, the
original) byte for byte, on the templates of real checkpoints. Errors (raise_exception) must
agree too: both fail, and ours names the template line and column."""
import argparse, json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(__file__))
from templates import TEMPLATES, CONVERSATIONS  # noqa: E402
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

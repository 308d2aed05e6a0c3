"""Bad input to the CLI: each case must exit non-zero with one clear line on stderr (naming the
file, line or byte), never crash; --help and --version work for every subcommand."""
import argparse, json, os, subprocess, sys, tempfile

failures = 0


def expect(name, args, stdin, rc_ok, must_contain):
    global failures
    p = subprocess.run(args, input=stdin, capture_output=True)
    err = p.stderr.decode("utf-8", "replace")
    problems = []
    if not rc_ok(p.returncode):
        problems.append(f"exit code {p.returncode}")
    if p.returncode < 0 or p.returncode >= 128:
        problems.append("crashed")
    for s in must_contain:
        if s not in err and s not in p.stdout.decode("utf-8", "replace"):
            problems.append(f"missing {s!r}")
    if p.returncode != 0 and len(err.strip().splitlines()) != 1:
        problems.append(f"stderr is not one line: {err!r}")
    if problems:
        failures += 1
        print(f"FAIL {name}: {', '.join(problems)}\n  stderr: {err!r}")
    else:
        print(f"ok   {name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    ap.add_argument("--models", required=True)
    a = ap.parse_args()
    z = a.zephyr
    model = os.path.join(a.models, "tokenizer-llama2", "models")
    fail = lambda rc: rc != 0
    tmp = tempfile.mkdtemp(prefix="zephyr-cli-")
    broken = os.path.join(tmp, "broken")
    os.makedirs(broken)
    open(os.path.join(broken, "tokenizer.json"), "w").write('{"model": {"type": "BPE", "vocab": {')
    notmpl = os.path.join(tmp, "notmpl")
    os.makedirs(notmpl)
    open(os.path.join(notmpl, "tokenizer.json"), "w").write(open(os.path.join(model, "tokenizer.json")).read())
    json.dump({"bos_token": "<s>", "eos_token": "</s>"}, open(os.path.join(notmpl, "tokenizer_config.json"), "w"))
    badtmpl = os.path.join(tmp, "badtmpl")
    os.makedirs(badtmpl)
    open(os.path.join(badtmpl, "tokenizer.json"), "w").write(open(os.path.join(model, "tokenizer.json")).read())
    json.dump({"chat_template": "{% for m in messages %}\n{{ m.content + }}\n{% endfor %}"}, open(os.path.join(badtmpl, "tokenizer_config.json"), "w"))
    zephyr_tmpl = "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token }}{% endfor %}"
    good = os.path.join(tmp, "good")
    os.makedirs(good)
    open(os.path.join(good, "tokenizer.json"), "w").write(open(os.path.join(model, "tokenizer.json")).read())
    json.dump({"chat_template": zephyr_tmpl, "eos_token": "</s>"}, open(os.path.join(good, "tokenizer_config.json"), "w"))

    expect("missing model path", [z, "tokenize", "-m", "/nonexistent/model"], b'{"text": "x"}\n', fail, ["/nonexistent/model"])
    expect("truncated tokenizer.json", [z, "tokenize", "-m", broken], b'{"text": "x"}\n', fail, ["tokenizer.json", "invalid JSON at byte"])
    expect("invalid UTF-8 on stdin", [z, "tokenize", "-m", model], b'{"text": "ok"}\n{"text": "bad \xff byte"}\n', fail, ["stdin:2"])
    expect("not JSON on stdin", [z, "tokenize", "-m", model], b'{"text": "ok"}\n\nnot json\n', fail, ["stdin:3", "invalid JSON"])
    expect("wrong shape", [z, "tokenize", "-m", model], b'{"txt": "ok"}\n', fail, ["stdin:1", "\"text\""])
    expect("ids not integers", [z, "detokenize", "-m", model], b'{"ids": [1, "x"]}\n', fail, ["stdin:1", "integers"])
    expect("id out of range", [z, "detokenize", "-m", model], b'{"ids": [1, 32000]}\n', fail, ["stdin:1", "32000"])
    expect("unknown role", [z, "template", "-m", good], b'{"messages": [{"role": "wizard", "content": "x"}]}\n', fail, ["stdin:1", "unknown role \"wizard\""])
    expect("no chat template", [z, "template", "-m", notmpl], b'{"messages": []}\n', fail, ["no chat_template"])
    expect("template syntax error", [z, "template", "-m", badtmpl], b'{"messages": [{"role": "user", "content": "x"}]}\n', fail, ["line 2, column"])
    expect("unknown subcommand", [z, "frobnicate"], b"", fail, [])
    expect("--version", [z, "--version"], b"", lambda rc: rc == 0, ["zephyr 0."])
    for sub in ("tokenize", "detokenize", "template"):
        expect(f"{sub} --help", [z, sub, "--help"], b"", lambda rc: rc == 0, ["--model"])
    p = subprocess.run([z, "template", "-m", good], input=b'{"messages": [{"role": "user", "content": "hi"}]}\n', capture_output=True)
    if p.stdout != b"<|user|>\nhi</s>":
        global failures
        failures += 1
        print(f"FAIL template output is not exact: {p.stdout!r}")
    if failures:
        sys.exit(f"{failures} CLI checks failed")
    print("all CLI error checks pass")


if __name__ == "__main__":
    main()

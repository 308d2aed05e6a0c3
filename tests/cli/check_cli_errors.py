"""Bad input to the CLI: each case must exit non-zero with one clear line on stderr (naming the
file, line or byte), never crash; --help and --version work for every subcommand."""
import argparse, atexit, json, os, shutil, subprocess, sys, tempfile

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


def chat_check(z, tiny, tokenizer_dir):
    """`chat` keeps history, /reset forgets it, and a greedy answer equals `generate --chat`'s."""
    global failures
    json.dump(json.load(open(os.path.join(tokenizer_dir, "tokenizer_config.json"))) | {"bos_token": "<s>"},
              open(os.path.join(tiny, "tokenizer_config.json"), "w"))
    gen = subprocess.run([z, "generate", "-m", tiny, "--chat", "-p", "hi there", "--temp", "0", "-n", "8"], capture_output=True)
    p = subprocess.run([z, "chat", "-m", tiny, "--temp", "0", "-n", "8"], input=b"hi there\nand more\n/reset\nhi there\n/exit\nignored\n",
                       capture_output=True)
    answers = p.stdout.decode().split("\n")
    problems = []
    if p.returncode != 0:
        problems.append(f"exit {p.returncode}: {p.stderr!r}")
    elif len(answers) != 4 or answers[3] != "":
        problems.append(f"expected 3 answers, got {answers!r}")
    elif answers[0] != gen.stdout.decode().rstrip("\n") or answers[2] != answers[0]:
        problems.append(f"answers {answers!r} vs generate {gen.stdout!r}")
    if problems:
        failures += 1
        print("FAIL chat:", "; ".join(problems))
    else:
        print("ok   chat: history, /reset, /exit; greedy answer equals generate --chat")


def chat_commands_check(z, tiny, tmp):
    """/system, /save and /load; a trailing backslash continues a message over lines."""
    global failures
    saved = os.path.join(tmp, "conv.json")
    script = "/system Be a pirate.\nhi\\\nthere\n/save " + saved + "\n/reset\n/load " + saved + "\n/load /nonexistent/c.json\n/bogus\n/exit\n"
    p = subprocess.run([z, "chat", "-m", tiny, "--temp", "0", "-n", "4"], input=script.encode(), capture_output=True)
    problems = []
    conv = json.load(open(saved)) if os.path.exists(saved) else {}
    msgs = conv.get("messages", [])
    if p.returncode != 0:
        problems.append(f"exit {p.returncode}: {p.stderr!r}")
    if [m["role"] for m in msgs] != ["system", "user", "assistant"] or msgs[0]["content"] != "Be a pirate." or msgs[1]["content"] != "hi\nthere":
        problems.append(f"saved conversation {conv!r}")
    err = p.stderr.decode()
    if "/nonexistent/c.json" not in err or "/bogus: unknown command" not in err:
        problems.append(f"errors for a bad /load and an unknown command: {err!r}")
    if problems:
        failures += 1
        print("FAIL chat commands:", "; ".join(problems))
    else:
        print("ok   chat: /system, /save, /load, multi-line messages, errors keep the session")


class Terminal:
    """A program on a pseudo-terminal: what it prints accumulates in `out`."""

    def __init__(self, argv, home=None):
        import pty
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            if home:
                os.environ["HOME"] = home
            os.execv(argv[0], argv)
        self.out = b""

    def read_until(self, done, seconds):  # generous limits: ctest runs other tests beside this one
        import select, time
        end = time.time() + seconds
        while time.time() < end and not done():
            if select.select([self.fd], [], [], 0.05)[0]:
                try:
                    self.out += os.read(self.fd, 65536)
                except OSError:
                    return

    def write(self, data):
        os.write(self.fd, data)

    def wait_exit(self, seconds):
        """The exit status, or None (and the program killed) when it did not end in time."""
        import time
        end = time.time() + seconds
        while time.time() < end:
            self.read_until(lambda: False, 0.1)
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        return None


def chat_line_editing_check(z, tiny, tmp):
    """On a terminal the input line is edited (libedit): the up arrow brings back the last message."""
    global failures
    t = Terminal([z, "chat", "-m", tiny, "-n", "2", "-t", "1"], home=tmp)  # the history file goes to tmp
    t.read_until(lambda: b"> " in t.out, 20)
    t.write(b"/help\r")
    t.read_until(lambda: t.out.count(b"/save FILE") == 1 and t.out.endswith(b"> "), 20)
    t.write(b"\x1b[A\r")  # up arrow, Enter: /help again
    t.read_until(lambda: t.out.count(b"/save FILE") == 2 and t.out.endswith(b"> "), 20)
    t.write(b"/exit\r")
    code = t.wait_exit(20)
    helps = t.out.count(b"/save FILE")  # 2: the up arrow recalled /help (read literally, it would have been a message)
    if helps == 2 and code == 0:
        print("ok   chat: arrow keys edit and recall input; history saved" if os.path.exists(os.path.join(tmp, ".zephyr_history"))
              else "ok   chat: arrow keys edit and recall input")
    else:
        failures += 1
        print(f"FAIL chat line editing: /help shown {helps} times, exit status {code}; output {t.out[-300:]!r}")


def chat_interrupt_check(z, tiny):
    """On a terminal, Ctrl-C stops the answer being streamed, not the program."""
    global failures
    import time
    t = Terminal([z, "chat", "-m", tiny, "-n", "100000", "-t", "1", "--temp", "0"])  # greedy: the same long answer every run
    t.read_until(lambda: b"> " in t.out, 20)
    t.write(b"Tell me something long\n")
    t.read_until(lambda: b"Tell me something long\r\n" in t.out, 10)
    t.read_until(lambda: False, 1.0)  # let the answer stream a while
    t.write(b"\x03")
    t.read_until(lambda: b"[stopped]" in t.out, 20)
    t.read_until(lambda: t.out.endswith(b"> "), 10)
    t.write(b"/exit\n")
    code = t.wait_exit(20)
    if b"[stopped]" in t.out and code == 0:
        print("ok   chat: Ctrl-C stops the answer, /exit then quits")
    else:
        failures += 1
        print(f"FAIL chat Ctrl-C: stopped={b'[stopped]' in t.out} exit status {code}")


def bench_check(z, tiny):
    """`bench --json` reports the tokens it ran; --paired-read adds a plain read after every generated token."""
    global failures
    args = [z, "bench", "-m", tiny, "-p", "8", "-n", "5", "-r", "2", "-t", "1"]
    problems = []
    p = subprocess.run(args + ["--json", "--paired-read"], capture_output=True)
    d = json.loads(p.stdout) if p.returncode == 0 else {}
    if p.returncode != 0:
        problems.append(f"exit code {p.returncode}: {p.stderr!r}")
    elif d["pp"] != 8 or d["tg"] != 5 or not d["pp_tps"] > 0 or not d["tg_tps"] > 0:
        problems.append(f"pp/tg fields: {d}")
    elif d.get("paired_tokens") != 10 or not (d["tg_share_of_read"] > 0 and d["read_gb_per_s"] > 0 and d["tg_gb_per_s"] > 0):
        problems.append(f"paired fields: {d}")
    p = subprocess.run(args + ["--json"], capture_output=True)
    if p.returncode != 0 or "tg_share_of_read" in json.loads(p.stdout):
        problems.append(f"without --paired-read: {p.stdout!r}")
    p = subprocess.run(args + ["--paired-read"], capture_output=True)
    if b"| tg5 |" not in p.stdout or b"plain read of the same weights" not in p.stdout:
        problems.append(f"table: {p.stdout!r}")
    if problems:
        failures += 1
        print(f"FAIL bench: {'; '.join(problems)}")
    else:
        print("ok   bench reports pp, tg and paired reads")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    ap.add_argument("--models", required=True)
    a = ap.parse_args()
    z = a.zephyr
    model = os.path.join(a.models, "tokenizer-llama2", "models")
    fail = lambda rc: rc != 0
    tmp = tempfile.mkdtemp(prefix="zephyr-cli-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # left behind, ~1 GB per run filled the disk
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
    expect("no chat template", [z, "template", "-m", notmpl], b'{"messages": []}\n', fail, ["has no chat template"])
    expect("tokenize --chat: not a conversation", [z, "tokenize", "--chat", "-m", good], b'{"text": "x"}\n', fail, ["stdin:1", "messages"])
    expect("tokenize --add-generation-prompt without --chat", [z, "tokenize", "--add-generation-prompt", "-m", good], b"", fail, ["needs --chat"])
    expect("tokenize --chat: no template", [z, "tokenize", "--chat", "-m", notmpl], b"", fail, ["has no chat template"])
    jinja = os.path.join(tmp, "jinja")  # transformers >= 4.43 saves the template beside the config
    os.makedirs(jinja)
    open(os.path.join(jinja, "tokenizer.json"), "w").write(open(os.path.join(model, "tokenizer.json")).read())
    json.dump({"eos_token": "</s>"}, open(os.path.join(jinja, "tokenizer_config.json"), "w"))
    open(os.path.join(jinja, "chat_template.jinja"), "w").write("{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}")
    expect("chat_template.jinja is read", [z, "template", "-m", jinja], b'{"messages": [{"role": "user", "content": "x"}]}\n',
           lambda rc: rc == 0, ["[user]x"])
    expect("template syntax error", [z, "template", "-m", badtmpl], b'{"messages": [{"role": "user", "content": "x"}]}\n', fail, ["line 2, column"])
    # Models: bad directories and files name the path and the tensor.
    tiny = os.path.join(tmp, "tiny")
    subprocess.run([z, "init", "-o", tiny, "--hidden", "32", "--layers", "1", "--heads", "2", "--intermediate", "48",
                    "--tokenizer", os.path.join(model, "tokenizer.json"), "--seed", "1"], check=True, capture_output=True)
    expect("init over an existing model", [z, "init", "-o", tiny, "--hidden", "32", "--layers", "1", "--heads", "2",
                                           "--intermediate", "48", "--vocab", "10"], b"", fail, ["already holds a model"])
    expect("init bad shape", [z, "init", "-o", os.path.join(tmp, "x"), "--hidden", "30", "--layers", "1", "--heads", "4",
                              "--intermediate", "48", "--vocab", "10"], b"", fail, ["--hidden", "multiple of --heads"])
    expect("generate: no model dir", [z, "generate", "-m", "/nonexistent/m", "-p", "hi"], b"", fail, ["/nonexistent/m"])
    expect("generate: --chat without template", [z, "generate", "-m", tiny, "-p", "hi", "--chat", "-n", "2"], b"", fail, ["has no chat template"])
    expect("generate: bad top-p", [z, "generate", "-m", tiny, "-p", "hi", "--top-p", "0"], b"", fail, ["--top-p"])
    expect("generate: works", [z, "generate", "-m", tiny, "-p", "hi", "-n", "3", "--seed", "1"], b"", lambda rc: rc == 0, ["tokens/s"])
    expect("debug logits: not ids", [z, "debug", "logits", "-m", tiny, "--ids", "1 x", "-o", os.path.join(tmp, "l")], b"", fail, ["--ids", "'x'"])
    # ZEPHYR_CPU_ISA caps the kernels' instruction sets (tests take lower CPUs' paths with it).
    expect("ZEPHYR_CPU_ISA: not a level", ["env", "ZEPHYR_CPU_ISA=avx-512", z, "generate", "-m", tiny, "-p", "hi", "-n", "2"], b"",
           fail, ["ZEPHYR_CPU_ISA: 'avx-512' is not an instruction-set level", "avx512_vnni"])
    expect("ZEPHYR_CPU_ISA: --version names the level", ["env", "ZEPHYR_CPU_ISA=baseline", z, "--version"], b"",
           lambda rc: rc == 0, ["kernels: baseline"] + ([] if os.environ.get("OPENBLAS_CORETYPE") else  # a user's choice wins
                                                        ["BLAS: OpenBLAS, Prescott kernels"]))
    expect("bench: nothing to measure", [z, "bench", "-m", tiny, "-p", "0", "-n", "0"], b"", fail, ["nothing to measure"])
    expect("debug logits: id outside vocab", [z, "debug", "logits", "-m", tiny, "--ids", "1 99999", "-o", os.path.join(tmp, "l")], b"", fail, ["99999", "vocabulary"])
    subprocess.run([z, "export-gguf", tiny, os.path.join(tmp, "full.gguf")], check=True, capture_output=True)
    full = open(os.path.join(tmp, "full.gguf"), "rb").read()
    open(os.path.join(tmp, "cut.gguf"), "wb").write(full[: len(full) // 2])
    expect("export-hf: not a GGUF", [z, "export-hf", tiny, os.path.join(tmp, "hf")], b"", fail, ["is not a GGUF file"])
    expect("export-hf: truncated GGUF", [z, "export-hf", os.path.join(tmp, "cut.gguf"), os.path.join(tmp, "hf")], b"", fail, ["cut.gguf"])
    open(os.path.join(tmp, "text.txt"), "w").write("hello world\n")
    expect("perplexity: --ctx beyond the model's context", [z, "perplexity", "-m", tiny, "-f", os.path.join(tmp, "text.txt"),
                                                            "--ctx", "1000000"], b"", fail, ["--ctx: is larger than the model's context"])
    expect("perplexity: missing file", [z, "perplexity", "-m", tiny, "-f", "/nonexistent/t.txt"], b"", fail, ["/nonexistent/t.txt"])
    notok = os.path.join(tmp, "notok")
    subprocess.run([z, "init", "-o", notok, "--hidden", "32", "--layers", "1", "--heads", "2", "--intermediate", "48", "--vocab", "50"], check=True, capture_output=True)
    expect("generate: model without tokenizer", [z, "generate", "-m", notok, "-p", "hi"], b"", fail, ["no tokenizer.json"])
    st = os.path.join(notok, "model.safetensors")
    data = open(st, "rb").read()
    open(st, "wb").write(data[: len(data) // 2])
    expect("truncated safetensors", [z, "debug", "logits", "-m", notok, "--ids", "1", "-o", os.path.join(tmp, "l")], b"", fail, ["model.safetensors", "truncated"])
    open(st, "wb").write(data[:4])
    expect("tiny safetensors", [z, "debug", "logits", "-m", notok, "--ids", "1", "-o", os.path.join(tmp, "l")], b"", fail, ["model.safetensors", "truncated"])
    cfg = os.path.join(notok, "config.json")
    c = json.load(open(cfg))
    c["num_attention_heads"] = 3
    json.dump(c, open(cfg, "w"))
    expect("bad config", [z, "debug", "logits", "-m", notok, "--ids", "1", "-o", os.path.join(tmp, "l")], b"", fail, ["config.json", "num_key_value_heads"])
    c["hidden_act"] = "gelu"
    json.dump(c, open(cfg, "w"))
    expect("unsupported activation", [z, "debug", "logits", "-m", notok, "--ids", "1", "-o", os.path.join(tmp, "l")], b"", fail, ["config.json", "gelu"])
    if os.path.exists(os.path.join(tmp, "l")):
        global failures
        failures += 1
        print("FAIL a failed debug logits left an output file")
    chat_check(z, tiny, good)
    chat_interrupt_check(z, tiny)
    chat_commands_check(z, tiny, tmp)
    chat_line_editing_check(z, tiny, tmp)
    bench_check(z, tiny)
    expect("unknown subcommand", [z, "frobnicate"], b"", fail, [])
    expect("--version", [z, "--version"], b"", lambda rc: rc == 0, ["zephyr 0."])
    for sub in ("tokenize", "detokenize", "template", "generate", "chat", "perplexity", "bench", "init"):
        expect(f"{sub} --help", [z, sub, "--help"], b"", lambda rc: rc == 0, ["--output" if sub == "init" else "--model"])
    p = subprocess.run([z, "template", "-m", good], input=b'{"messages": [{"role": "user", "content": "hi"}]}\n', capture_output=True)
    if p.stdout != b"<|user|>\nhi</s>":
        failures += 1
        print(f"FAIL template output is not exact: {p.stdout!r}")
    if failures:
        sys.exit(f"{failures} CLI checks failed")
    print("all CLI error checks pass")


if __name__ == "__main__":
    main()

"""Hostile input as an attacker would write it: every case must end in one clear error line (exit 1)
within seconds and under a 3 GiB address-space limit — never a crash, a hang or runaway memory.
Prints each case's time; the limits themselves are in chat_template.h, json_file.h, regex.cpp,
yaml_file.h and trainer.cpp."""
import argparse, json, os, resource, shutil, struct, subprocess, sys, tempfile, time

failures = 0
MEMORY = 3 << 30


def limit_memory():
    # AddressSanitizer reserves terabytes of address space for its shadow: `make test-asan` runs
    # this without the limit (ASan bounds memory errors itself).
    if "ASAN_OPTIONS" not in os.environ:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def expect(name, args, stdin, must_contain):
    global failures
    t0 = time.time()
    try:
        p = subprocess.run(args, input=stdin.encode() if isinstance(stdin, str) else stdin, capture_output=True,
                           preexec_fn=limit_memory, timeout=60)
    except subprocess.TimeoutExpired:
        failures += 1
        print(f"FAIL {name}: still running after 60 s")
        return
    took = time.time() - t0
    err = p.stderr.decode("utf-8", "replace").strip()
    problems = []
    if p.returncode != 1:
        problems.append(f"exit code {p.returncode}" + (" (crashed)" if p.returncode < 0 else ""))
    lines = err.splitlines()
    if not lines or not lines[-1].startswith("zephyr: error: ") or sum("error" in l for l in lines) != 1:
        problems.append("stderr does not end in one error line")
    err = lines[-1] if lines else err
    if "internal error" in err:
        problems.append("an internal error instead of a message")
    for s in must_contain:
        if s not in err:
            problems.append(f"missing {s!r}")
    if problems:
        failures += 1
        print(f"FAIL {name}: {', '.join(problems)}\n  stderr: {err[:400]!r}")
    else:
        print(f"ok   {name} ({took:.2f} s): {err[:150]}")


def check(ok, what, detail=""):
    global failures
    if not ok:
        failures += 1
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail!r}"))


def with_template(base, d, template):
    shutil.copytree(base, d)
    cfg = json.load(open(os.path.join(d, "tokenizer_config.json")))
    cfg["chat_template"] = template
    json.dump(cfg, open(os.path.join(d, "tokenizer_config.json"), "w"))
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    ap.add_argument("--tokenizer", required=True, help="a tokenizer.json directory (byte-level, ChatML)")
    a = ap.parse_args()
    z = a.zephyr
    tmp = tempfile.mkdtemp(prefix="zephyr-hostile-")
    try:
        model = os.path.join(tmp, "model")
        subprocess.run([z, "init", "-o", model, "--hidden", "32", "--layers", "1", "--heads", "2", "--intermediate", "64",
                        "--tokenizer", a.tokenizer], check=True, capture_output=True)
        chat = json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n"

        # Templates: a template is code from whoever published the model.
        templates = [
            ("a loop of 1e9", "{% for i in range(1000000000) %}x{% endfor %}", "range() is too long"),
            ("nested loops of 1e5 x 1e5", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
             "units of work"),
            ("'a' * 10**10", "{{ 'a' * 10000000000 }}", "over the template limit of 64 MiB"),
            ("a string doubling 64 times", "{% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
             "{% endfor %}{{ ns.s }}", "over the template limit"),
            ("a list doubling 64 times", "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}"
             "{% endfor %}{{ ns.l|length }}", "units of work"),
            ("indent(10**10)", "{{ 'a\nb' | indent(10000000000) }}", "over the template limit"),
            ("tojson(indent=10**10)", "{{ [1, 2] | tojson(indent=10000000000) }}", "over the template limit"),
            ("a macro calling itself", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "levels deep"),
            ("int64 min // -1 (a SIGFPE in C)", "{{ (-9223372036854775807 - 1) // -1 }}", "integer overflow in //"),
            ("int64 max + 1", "{{ 9223372036854775807 + 1 }}", "integer overflow in +"),
            ("2 ** 64", "{{ 2 ** 64 }}", "integer overflow in **"),
            ("a list nested 100k deep", "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}"
             "{% endfor %}{{ ns.l }}", "nested deeper than"),
            ("a namespace holding itself", "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", "nested deeper than"),
            ("100k nested parentheses", "{{ " + "(" * 100000 + "1" + ")" * 100000 + " }}", "nested deeper than 100"),
            ("100k nested ifs", "{% if true %}" * 100000 + "x" + "{% endif %}" * 100000, "nested deeper than 100"),
            ("a chain of 100k additions", "{{ " + "1 + " * 100000 + "1 }}", "nested deeper than 100"),
            ("100k nots", "{{ " + "not " * 100000 + "1 }}", "nested deeper than 100"),
        ]
        for k, (name, template, want) in enumerate(templates):
            d = with_template(model, os.path.join(tmp, f"t{k}"), template)
            expect(f"template: {name}", [z, "template", "-m", d], chat, ["chat template", want])

        # JSON: 100k brackets in a field nothing reads, in every reader of outside JSON.
        deep = "[" * 100000 + "]" * 100000
        expect("template variables: 100k nested brackets", [z, "template", "-m", model],
               '{"messages": [{"role": "user", "content": "hi"}], "x": ' + deep + "}\n", ["stdin:1", "nested deeper than 512"])
        expect("tokenize: 100k nested brackets", [z, "tokenize", "-m", model], '{"text": "hi", "x": ' + deep + "}\n",
               ["stdin:1", "nested deeper than 512"])
        data = os.path.join(tmp, "deep.jsonl")
        open(data, "w").write(chat + '{"messages": [], "x": ' + deep + "}\n")
        # sft skips a bad row with a warning naming it (its policy for any bad line) and trains on the rest.
        p = subprocess.run([z, "sft", "--model_name_or_path", model, "--dataset_path", data, "--output_dir", os.path.join(tmp, "o"),
                            "--max_steps", "1"], capture_output=True, preexec_fn=limit_memory, timeout=60)
        check(p.returncode == 0 and b"skipping " + data.encode() + b":2: JSON nested deeper than 512" in p.stderr,
              "sft dataset: 100k nested brackets on line 2 skipped with a warning naming the line", p.stderr[-300:])
        cfg = os.path.join(model, "config.json")
        shutil.copytree(model, os.path.join(tmp, "deepcfg"))
        c = json.load(open(cfg))
        open(os.path.join(tmp, "deepcfg", "config.json"), "w").write(json.dumps(c)[:-1] + ', "x": ' + deep + "}")
        expect("config.json: 100k nested brackets", [z, "generate", "-m", os.path.join(tmp, "deepcfg"), "-p", "hi", "-n", "1"], "",
               ["config.json", "nested deeper than 512"])

        # tokenizer.json: nested Sequences and a pattern that backtracks catastrophically.
        tok = json.load(open(os.path.join(model, "tokenizer.json")))
        nested = {"type": "Lowercase"}
        for _ in range(100000):
            nested = {"type": "Sequence", "normalizers": [nested]}
        d = os.path.join(tmp, "seq")
        shutil.copytree(model, d)
        text = json.dumps(dict(tok, normalizer={"type": "Lowercase"}))
        marker = '{"type": "Lowercase"}'
        text = text.replace(marker, '{"type": "Sequence", "normalizers": [' * 100000 + marker + "]}" * 100000, 1)
        open(os.path.join(d, "tokenizer.json"), "w").write(text)
        expect("tokenizer.json: 100k nested Sequence normalizers", [z, "tokenize", "-m", d], '{"text": "hi"}\n',
               ["tokenizer.json", "nested deeper than 512"])
        for name, pattern, text in [("(a+)+$ on 40 a's", "(a+)+$", "a" * 40 + "!"),
                                    ("\\s*[\\r\\n]+|\\s (quadratic) on 100k spaces", "\\s*[\\r\\n]+|\\s", " " * 100000)]:
            d = os.path.join(tmp, f"rx{len(text)}")
            shutil.copytree(model, d)
            split = {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}
            json.dump(dict(tok, pre_tokenizer={"type": "Sequence", "pretokenizers": [split, tok["pre_tokenizer"]]}),
                      open(os.path.join(d, "tokenizer.json"), "w"))
            expect(f"tokenizer.json regex {name}", [z, "tokenize", "-m", d], json.dumps({"text": text}) + "\n",
                   ["stdin:1", "catastrophic backtracking"])

        # safetensors: a shape whose size overflows 64 bits.
        for name, shape in [("2^62 x 4 elements", [1 << 62, 4]), ("2^32 x 2^32 (wraps to 0)", [1 << 32, 1 << 32])]:
            d = os.path.join(tmp, f"shape{len(name)}")
            shutil.copytree(model, d)
            header = json.dumps({"model.embed_tokens.weight": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}}).encode()
            open(os.path.join(d, "model.safetensors"), "wb").write(struct.pack("<Q", len(header)) + header)
            expect(f"safetensors shape {name}", [z, "generate", "-m", d, "-p", "hi", "-n", "1"], "",
                   ["model.safetensors", "model.embed_tokens.weight"])

        # Non-finite numbers: a final norm of NaN makes every logit NaN; no token may be drawn from it.
        d = os.path.join(tmp, "nan")
        shutil.copytree(model, d)
        raw = bytearray(open(os.path.join(d, "model.safetensors"), "rb").read())
        n = struct.unpack("<Q", raw[:8])[0]
        t = json.loads(raw[8:8 + n])["model.norm.weight"]
        begin, end = (8 + n + o for o in t["data_offsets"])
        raw[begin:end] = struct.pack("<f", float("nan")) * ((end - begin) // 4)
        open(os.path.join(d, "model.safetensors"), "wb").write(raw)
        expect("NaN weights", [z, "generate", "-m", d, "-p", "hi", "-n", "4", "--temp", "0.7", "--seed", "1"], "",
               ["non-finite logits"])
        # A field of the wrong type is named with its file, not as the JSON library's text.
        d = os.path.join(tmp, "badflag")
        shutil.copytree(model, d)
        cfg = json.load(open(os.path.join(d, "tokenizer_config.json")))
        json.dump(dict(cfg, add_bos_token="yes"), open(os.path.join(d, "tokenizer_config.json"), "w"))
        for cmd in (["tokenize", "-m", d], ["export-gguf", d, os.path.join(tmp, "badflag.gguf")]):
            expect(f"add_bos_token \"yes\" ({cmd[0]})", [z] + cmd, json.dumps({"text": "hi"}) + "\n",
                   ["tokenizer_config.json", "\"add_bos_token\" must be true or false"])
        # Ids beyond 32 bits are refused, not wrapped to another token (2^32 + 5 is not 5).
        expect("an id of 2^32 + 5 to detokenize", [z, "detokenize", "-m", model], json.dumps({"ids": [1, (1 << 32) + 5]}) + "\n",
               ["stdin:1", "32-bit integers", "4294967301"])
        wide = os.path.join(tmp, "wide.jsonl")
        open(wide, "w").write(json.dumps({"input_ids": [1, (1 << 32) + 5], "labels": [1, 2]}) + "\n")
        expect("an input id of 2^32 + 5 in a training row", [z, "sft", "--model_name_or_path", model, "--dataset_path", wide,
                                                              "--output_dir", os.path.join(tmp, "wide-out"), "--strict", "true"],
               "", ["wide.jsonl:1", "32-bit", "4294967301"])

        # YAML: an alias bomb (9^9 strings from 9 lines) and a node that holds itself.
        bomb = os.path.join(tmp, "bomb.yaml")
        lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
        for prev, cur in zip("abcdefgh", "bcdefghi"):
            lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
        open(bomb, "w").write("\n".join(lines) + "\n")
        selfref = os.path.join(tmp, "self.yaml")
        open(selfref, "w").write("generators: &x [*x]\n")
        expect("YAML alias bomb (training config)", [z, "sft", "--config", bomb], "", ["bomb.yaml", "expands to more than"])
        expect("YAML alias bomb (feedback config)", [z, "feedback", "generate", "--config", bomb], "", ["bomb.yaml", "expands to more than"])
        expect("YAML node holding itself", [z, "feedback", "generate", "--config", selfref], "", ["self.yaml", "expands to more than"])
        rows = os.path.join(tmp, "sft.jsonl")
        open(rows, "w").write("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                               {"role": "assistant", "content": f"a{i}"}]}) + "\n" for i in range(4)))
        rules = os.path.join(tmp, "rules.yaml")
        open(rules, "w").write("\n".join(lines) + "\nopeners: *i\n")
        expect("YAML alias bomb (filter rules)", [z, "data", "filter", "--rules", rules, "--in", rows, "--out", os.path.join(tmp, "f.jsonl")],
               "", ["rules.yaml", "expands to more than"])

        # YAML whose key is a list, or whose value has the wrong type (yaml-cpp's own exceptions).
        for name, text, cmd in [("training config: a key that is a list", "learning_rate: 1e-3\n{ [0, 32]}: 1\n", ["sft", "--config"]),
                                ("feedback config: prompts a list", "prompts: [1]\ngenerators: []\n", ["feedback", "generate", "--config"])]:
            path = os.path.join(tmp, f"bad{len(text)}.yaml")
            open(path, "w").write(text)
            expect(f"YAML {name}", [z] + cmd + [path], "", [path + ":", "unusable YAML"])

        # An output path that is the input, spelled differently or through a symlink.
        before = open(rows, "rb").read()
        expect("data filter --out naming its --in", [z, "data", "filter", "--in", rows, "--out", os.path.join(tmp, ".", "sft.jsonl")],
               "", ["is also the input"])
        gguf = os.path.join(tmp, "m.gguf")
        subprocess.run([z, "export-gguf", model, gguf], check=True, capture_output=True)
        os.symlink(gguf, os.path.join(tmp, "link.gguf"))
        expect("quantize onto its input through a symlink", [z, "quantize", gguf, os.path.join(tmp, "link.gguf"), "--type", "q8_0"],
               "", ["is also the input"])
        check(open(rows, "rb").read() == before, "the input is untouched")

        # A bad value in generation_config.json names the file, not a flag the user never gave.
        d = os.path.join(tmp, "gencfg")
        shutil.copytree(model, d)
        g = json.load(open(os.path.join(d, "generation_config.json")))
        json.dump(dict(g, temperature=-1), open(os.path.join(d, "generation_config.json"), "w"))
        expect("generation_config.json temperature -1", [z, "generate", "-m", d, "-p", "hi", "-n", "2"], "",
               ["generation_config.json: temperature", "override it with --temp"])

        # A full disk on stdout: an error, not exit 0 with nothing written.
        with open("/dev/full", "wb") as full_disk:
            p = subprocess.run([z, "tokenize", "-m", model], input=b'{"text": "hi"}\n', stdout=full_disk, stderr=subprocess.PIPE)
        check(p.returncode == 1 and b"cannot write the output (stdout)" in p.stderr, "stdout on a full disk: exit 1 and an error",
              p.stderr[-200:])

        # trainer_state.json counters read back on --resume.
        out = os.path.join(tmp, "run")
        train = [z, "sft", "--model_name_or_path", model, "--dataset_path", rows, "--output_dir", out, "--per_device_train_batch_size", "2"]
        subprocess.run(train + ["--max_steps", "2", "--save_steps", "1"], check=True, capture_output=True)
        state = os.path.join(out, "checkpoint-1", "trainer_state.json")  # the last step writes the model, not a checkpoint
        good = json.load(open(state))
        for key, value, want in [("global_step", -5, "outside 0.."), ("micro_batches_consumed", 1 << 62, "outside 0.."),
                                 ("optimizer_steps", 3, "outside 0..1"), ("global_step", "2", "expected an integer"),
                                 ("global_step", 18446744073709551615, "outside 0..")]:
            json.dump(dict(good, **{key: value}), open(state, "w"))
            expect(f"--resume with {key} = {value!r}", train + ["--max_steps", "3", "--resume"], "", ["trainer_state.json", key, want])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{failures} hostile-input check(s) failed")
        sys.exit(1)
    print("every hostile input ended in a clear error")


if __name__ == "__main__":
    main()

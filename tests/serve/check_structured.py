"""Structured outputs and log-probs through `zephyr serve`, judged by packages no one here wrote:
- 200 random JSON schemas of the supported subset (nested objects, arrays with bounds, enums,
  const, anyOf, type lists, integer bounds, $defs/$ref), answered greedy and sampled by a tiny
  random model (Mistral's sentencepiece vocabulary) and 40 of them by SmolLM2 (byte-level): every
  answer parses and validates with the `jsonschema` package;
- the official `openai` client's structured-output call (`chat.completions.parse` with a pydantic
  model) and `response_format: json_object`;
- schemas outside the subset get a 400 naming the keyword;
- log-probs equal the log-softmax of `zephyr debug logits` at the same positions, top lists sorted
  and complete; streamed log-probs equal the whole response's; completions' `logprobs: N` shape.
Run with the reference venv."""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

import jsonschema
import numpy as np
import openai
import pydantic

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_server import Server, check, error_of  # noqa: E402
import check_server  # noqa: E402
from fixtures import mistral_tokenizer_dir  # noqa: E402


def bytes_to_unicode():
    """GPT-2's byte-level alphabet: printable bytes stand for themselves, the others for 256 + n."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def random_schema(rng, depth=0, defs=None):
    """A schema of the supported subset."""
    leaf = ["string", "integer", "number", "boolean", "null", "enum", "const", "bounded"]
    kinds = leaf + (["object", "object", "array", "anyof", "typelist"] if depth < 3 else [])
    k = rng.choice(kinds)
    if k in ("string", "integer", "number", "boolean", "null"):
        return {"type": k}
    if k == "bounded":
        lo = rng.randint(-50, 50)
        return {"type": rng.choice(["integer", "number"]), "minimum": lo, "maximum": lo + rng.randint(0, 200)}
    if k == "enum":
        return {"enum": rng.sample(["red", "green", "blue", 1, 2.5, True, None, "x y", "é"], rng.randint(1, 4))}
    if k == "const":
        return {"const": rng.choice(["fixed", 7, False, None])}
    if k == "typelist":
        return {"type": rng.sample(["string", "integer", "boolean", "null"], 2)}
    if k == "anyof":
        return {"anyOf": [random_schema(rng, depth + 1, defs) for _ in range(rng.randint(2, 3))]}
    if k == "array":
        s = {"type": "array", "items": random_schema(rng, depth + 1, defs)}
        lo = rng.randint(0, 2)
        if rng.random() < 0.5:
            s["minItems"] = lo
        if rng.random() < 0.6:
            s["maxItems"] = lo + rng.randint(0, 3)
        return s
    props = {f"p{i}_{rng.choice(['a', 'key', 'x'])}": random_schema(rng, depth + 1, defs) for i in range(rng.randint(0, 4))}
    s = {"type": "object", "properties": props, "required": [p for p in props if rng.random() < 0.6]}
    if rng.random() < 0.7:
        s["additionalProperties"] = False
    if defs is not None and rng.random() < 0.3:
        name = f"d{len(defs)}"
        defs[name] = s
        return {"$ref": f"#/$defs/{name}"}
    return s


def top_schema(rng):
    defs = {}
    s = random_schema(rng, 0, defs)
    if defs:
        s = dict(s) if isinstance(s, dict) else s
        s["$defs"] = defs
    return s


def structured_answers(s, schemas, label, max_tokens):
    bad = []
    for i, schema in enumerate(schemas):
        body = {"messages": [{"role": "user", "content": f"Answer in JSON (case {i})."}], "max_tokens": max_tokens, "seed": i,
                "temperature": 0 if i % 2 == 0 else 0.9,
                "response_format": {"type": "json_schema", "json_schema": {"name": f"s{i}", "schema": schema, "strict": True}}}
        status, _, data = s.request("POST", "/v1/chat/completions", body)
        if status != 200:
            bad.append(f"schema {i}: HTTP {status} {data[:200]!r}")
            continue
        r = json.loads(data)
        text = r["choices"][0]["message"]["content"]
        try:
            jsonschema.validate(json.loads(text), schema)
        except Exception as e:  # noqa: BLE001
            bad.append(f"schema {i} ({r['choices'][0]['finish_reason']}): {json.dumps(schema)} -> {text!r}: {str(e)[:200]}")
    check(not bad, f"{label}: {len(schemas)} random schemas (greedy and sampled) all answered with JSON that validates"
          + ("".join("\n     " + b for b in bad[:5])))


def logprob_checks(s, z, gguf):
    # What the server feeds for this conversation, and the tokens it answers with.
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    r = s.request("POST", "/v1/chat/completions", {"messages": msgs, "max_tokens": 10, "temperature": 0, "repetition_penalty": 1.0,
                                                    "logprobs": True, "top_logprobs": 5})
    resp = json.loads(r[2])
    content = resp["choices"][0]["logprobs"]["content"]
    check(len(content) == resp["usage"]["completion_tokens"] - (resp["choices"][0]["finish_reason"] == "stop"),
          f"one log-prob entry per generated token ({len(content)}, EOS not listed)")
    prompt = subprocess.run([z, "tokenize", "-m", gguf, "--chat", "--add-generation-prompt"], input=json.dumps({"messages": msgs}),
                            capture_output=True, text=True, check=True).stdout
    prompt_ids = json.loads(prompt)
    prompt_ids = prompt_ids["ids"] if isinstance(prompt_ids, dict) else prompt_ids
    # Byte-level vocabulary: a token's bytes name it.
    from tokenizers import Tokenizer
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([z, "export-hf", gguf, d], check=True, capture_output=True)
        tk = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    b2u = bytes_to_unicode()
    gen_ids = [tk.token_to_id("".join(b2u[b] for b in e["bytes"])) for e in content]
    ids = prompt_ids + gen_ids
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        # One pass per id: the engine computes every row as a decode step (batch invariance), and
        # on a quantized model that differs from a prompt's GEMM by ~0.1.
        subprocess.run([z, "debug", "logits", "-m", gguf, "--one-by-one", "--ids", " ".join(map(str, ids)), "-o", f.name],
                       check=True, capture_output=True)
        logits = np.fromfile(f.name, dtype="<f4").reshape(len(ids), -1).astype(np.float64)
    worst, order_ok = 0.0, True
    for i, e in enumerate(content):
        row = logits[len(prompt_ids) - 1 + i]
        lsm = row - (row.max() + np.log(np.exp(row - row.max()).sum()))
        worst = max(worst, abs(lsm[gen_ids[i]] - e["logprob"]))
        want = np.argsort(-lsm, kind="stable")[:5]
        got_ids = [tk.token_to_id("".join(b2u[b] for b in t["bytes"])) for t in e["top_logprobs"]]
        order_ok &= len(got_ids) == 5 and got_ids == list(want)
        worst = max(worst, max(abs(lsm[t] - x["logprob"]) for t, x in zip(got_ids, e["top_logprobs"])))
    check(worst < 1e-6 and order_ok, f"log-probs equal log-softmax of `zephyr debug logits` (max diff {worst:.2e}); top-5 lists sorted and complete")

    stream = s.request("POST", "/v1/chat/completions", {"messages": msgs, "max_tokens": 10, "temperature": 0, "repetition_penalty": 1.0,
                                                         "logprobs": True, "top_logprobs": 5, "stream": True})
    streamed = []
    for line in stream[2].decode().split("\n"):
        if line.startswith("data: {"):
            c = json.loads(line[6:])
            for ch in c["choices"]:
                if ch.get("logprobs"):
                    streamed += ch["logprobs"]["content"]
    check(streamed == content, f"streamed chunks carry the same log-probs ({len(streamed)} entries)")

    r = json.loads(s.request("POST", "/v1/completions", {"prompt": "The sea is", "max_tokens": 6, "logprobs": 3, "temperature": 0})[2])
    lp = r["choices"][0]["logprobs"]
    offsets_ok = all(lp["text_offset"][i] + len(lp["tokens"][i].encode()) == lp["text_offset"][i + 1] for i in range(len(lp["tokens"]) - 1))
    check(len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == r["usage"]["completion_tokens"] and
          all(len(t) == 3 for t in lp["top_logprobs"]) and offsets_ok and "".join(lp["tokens"]) == r["choices"][0]["text"],
          f"completions logprobs=3: tokens, token_logprobs, top_logprobs (3 each), text_offset: {lp['tokens']}")
    status, err, _ = error_of(s.request("POST", "/v1/chat/completions", {"messages": msgs, "top_logprobs": 3}))
    check(status == 400 and err.get("param") == "top_logprobs", f"top_logprobs without logprobs: 400 ({err.get('message')})")
    status, err, _ = error_of(s.request("POST", "/v1/chat/completions", {"messages": msgs, "logprobs": True, "top_logprobs": 21}))
    check(status == 400 and err.get("param") == "top_logprobs", "top_logprobs above 20: 400")


class Person(pydantic.BaseModel):
    name: str
    age: int
    languages: list[str]


def client_checks(s, name):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{s.port}/v1", api_key=check_server.KEY)
    r = client.chat.completions.parse(model=name, messages=[{"role": "user", "content": "Describe a programmer as JSON."}],
                                      response_format=Person, temperature=0, max_tokens=200)
    p = r.choices[0].message.parsed
    check(isinstance(p, Person), f"openai client chat.completions.parse(response_format=pydantic model) -> {p!r}")
    r = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "List two fruits as JSON."}],
                                       response_format={"type": "json_object"}, temperature=0.8, seed=5, max_tokens=200)
    text = r.choices[0].message.content
    try:
        ok = isinstance(json.loads(text), dict)
    except ValueError:
        ok = False
    check(ok and r.choices[0].finish_reason == "stop", f"response_format json_object gives a JSON object: {text!r}")
    for schema, word in [({"type": "string", "pattern": "^a"}, "pattern"), ({"type": "object", "properties": {"d": {"format": "date"}}}, "format"),
                         ({"type": "array", "prefixItems": []}, "prefixItems")]:
        status, err, _ = error_of(s.request("POST", "/v1/chat/completions", {
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}))
        check(status == 400 and err.get("param") == "response_format" and word in err.get("message", ""),
              f"schema outside the subset: 400 naming \"{word}\" ({err.get('message')})")
    status, err, _ = error_of(s.request("POST", "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "x"}], "max_tokens": 3,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
            "type": "object", "properties": {"a_long_property_name": {"type": "string"}}, "required": ["a_long_property_name"]}}}}))
    check(status == 400 and err.get("param") == "max_tokens", f"max_tokens below the schema's shortest answer: 400 ({err.get('message')})")


def cli_checks(z, gguf, schemas):
    with tempfile.TemporaryDirectory() as d:
        bad = []
        for i, schema in enumerate(schemas):
            path = os.path.join(d, f"s{i}.json")
            with open(path, "w") as f:
                json.dump(schema, f)
            p = subprocess.run([z, "generate", "-m", gguf, "--chat", "-p", "Answer in JSON.", "--json-schema", path, "-n", "1500",
                                "--seed", str(i), "--temp", "0.8"], capture_output=True, text=True, timeout=300)
            try:
                jsonschema.validate(json.loads(p.stdout), schema)
            except Exception as e:  # noqa: BLE001
                bad.append(f"{json.dumps(schema)} -> {p.stdout!r} {p.stderr[-200:]!r}: {str(e)[:120]}")
        check(not bad, f"zephyr generate --json-schema: {len(schemas)} schemas answered with JSON that validates"
              + "".join("\n     " + b for b in bad[:3]))
        p = subprocess.run([z, "generate", "-m", gguf, "-p", "x", "--json"], capture_output=True, text=True, timeout=300)
        try:
            ok = isinstance(json.loads(p.stdout), dict)
        except ValueError:
            ok = False
        check(ok and p.returncode == 0, f"zephyr generate --json: a JSON object ({p.stdout.strip()[:80]!r})")
        path = os.path.join(d, "bad.json")
        with open(path, "w") as f:
            json.dump({"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}}}, f)
        p = subprocess.run([z, "generate", "-m", gguf, "-p", "x", "--json-schema", path], capture_output=True, text=True, timeout=300)
        check(p.returncode != 0 and path in p.stderr and "/properties/when" in p.stderr and "\"format\"" in p.stderr,
              f"a schema outside the subset names the file, the place and the keyword: {p.stderr.strip()}")
        with open(path, "w") as f:
            f.write('{"type": "object",')
        p = subprocess.run([z, "generate", "-m", gguf, "-p", "x", "--json-schema", path], capture_output=True, text=True, timeout=300)
        check(p.returncode != 0 and path in p.stderr and "byte" in p.stderr, f"a schema file that is not JSON: {p.stderr.strip()}")


def main():
    a = check_server.parse_args(models=True)
    rng = random.Random(2026)
    schemas = [top_schema(rng) for _ in range(200)]
    with tempfile.TemporaryDirectory() as tmp:
        tok = mistral_tokenizer_dir(a.models, os.path.join(tmp, "tok"))
        tiny = os.path.join(tmp, "tiny")
        subprocess.run([a.zephyr, "init", "-o", tiny, "--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2",
                        "--intermediate", "128", "--tokenizer", tok, "--seed", "3", "--max-position", "4096"], check=True, capture_output=True)
        s = Server(a.zephyr, tiny, "--api-key", check_server.KEY, "--parallel", "4", "--ctx", "2048")
        try:
            structured_answers(s, schemas, "tiny random model (sentencepiece vocabulary)", 1500)
        finally:
            s.close()
    s = Server(a.zephyr, a.gguf, "--api-key", check_server.KEY, "--model-name", "smollm2", "--ctx", "2048")
    try:
        structured_answers(s, schemas[:40], "SmolLM2-135M-Instruct (byte-level vocabulary)", 1500)
        client_checks(s, "smollm2")
        cli_checks(a.zephyr, a.gguf, schemas[40:50])
        logprob_checks(s, a.zephyr, a.gguf)
    finally:
        s.close()
    check_server.finish("structured-output and log-prob")


if __name__ == "__main__":
    main()

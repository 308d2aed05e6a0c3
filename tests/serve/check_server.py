"""`zephyr serve` through real clients: the official `openai` package for chat (plain and
streamed), completions, models, `n`, stop strings and usage; raw HTTP for every error case
(400, 401, 404, 413, 503 with Retry-After); 16 concurrent clients each getting exactly the tokens
a solo request with the same seed gets (greedy and sampled); a client that disconnects mid-stream
freeing its slot at once (/metrics); SIGTERM with a request in flight (it finishes, the server
exits 0). The model is the packaged SmolLM2-135M-Instruct. Run with the reference venv."""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai

failures = 0
KEY = "sk-test-key"


def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    failures += 0 if ok else 1


class Server:
    def __init__(self, zephyr, model, *flags):
        self.p = subprocess.Popen([zephyr, "serve", "-m", model, "--port", "0", *flags], stderr=subprocess.PIPE, text=True)
        line = self.p.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not m:
            raise SystemExit(f"FAIL the server did not start: {line!r}")
        self.port = int(m.group(1))
        self.log = []
        threading.Thread(target=lambda: self.log.extend(self.p.stderr), daemon=True).start()

    def request(self, method, path, body=None, headers=None, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"} | (headers or {})
        c.request(method, path, body=raw if raw is not None else (json.dumps(body) if body is not None else None), headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def metric(self, name):
        _, _, body = self.request("GET", "/metrics")
        m = re.search(rf"^{re.escape(name)} (\S+)$", body.decode(), re.M)
        return float(m.group(1)) if m else None

    def close(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()


def parse_args(models=False):
    """--zephyr and --gguf (the packaged SmolLM2), and --models (the npm tokenizers) when asked."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    ap.add_argument("--gguf", required=True)
    if models:
        ap.add_argument("--models", required=True)
    a = ap.parse_args()
    if not os.path.exists(a.gguf):
        raise SystemExit(f"FAIL {a.gguf} is missing: `make models` fetches it (make test does)")
    return a


def finish(what):
    """Exits 1 when a check failed, else says all passed."""
    if failures:
        print(f"{failures} {what} check(s) failed")
        sys.exit(1)
    print(f"all {what} checks passed")


def error_of(status_headers_body):
    status, headers, body = status_headers_body
    try:
        return status, json.loads(body)["error"], headers
    except Exception:
        return status, {"message": body[:200]}, headers


def api_tests(s, client, name):
    msgs = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Name three colors."}]
    r = client.chat.completions.create(model=name, messages=msgs, temperature=0, max_tokens=24)
    text = r.choices[0].message.content
    check(r.object == "chat.completion" and r.choices[0].message.role == "assistant" and len(text) > 0 and
          r.choices[0].finish_reason in ("stop", "length") and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens,
          f"chat completion through the openai client: {text!r} ({r.choices[0].finish_reason}, usage {r.usage.prompt_tokens}+{r.usage.completion_tokens})")
    ids = json.loads(subprocess.run([Z, "tokenize", "--chat", "--add-generation-prompt", "-m", MODEL], input=json.dumps({"messages": msgs}) + "\n",
                                    capture_output=True, text=True).stdout)["ids"]
    check(r.usage.prompt_tokens == len(ids), f"usage.prompt_tokens is the chat ids' length ({len(ids)})")
    stream = client.chat.completions.create(model=name, messages=msgs, temperature=0, max_tokens=24, stream=True,
                                            stream_options={"include_usage": True})
    pieces, finish, usage, roles = [], None, None, 0
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            roles += c.delta.role == "assistant"
            pieces.append(c.delta.content or "")
            finish = c.finish_reason or finish
    check("".join(pieces) == text and finish == r.choices[0].finish_reason and roles == 1 and usage is not None and
          usage.completion_tokens == r.usage.completion_tokens, f"streamed deltas join to the same answer; one role delta; usage chunk ({len(pieces)} chunks)")
    r = client.chat.completions.create(model=name, messages=msgs, temperature=1.0, seed=7, n=3, max_tokens=16)
    again = client.chat.completions.create(model=name, messages=msgs, temperature=1.0, seed=7, n=3, max_tokens=16)
    texts = [c.message.content for c in r.choices]
    check(len(texts) == 3 and [c.index for c in r.choices] == [0, 1, 2] and texts == [c.message.content for c in again.choices]
          and len(set(texts)) > 1, f"n=3 gives three sampled choices, the same again with the seed: {texts}")
    r = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Count from 1 to 20, separated by commas."}],
                                       temperature=0, max_tokens=60, stop=["5"])
    t = r.choices[0].message.content
    check("5" not in t and r.choices[0].finish_reason == "stop" and len(t) > 0, f"stop string: the text ends before it: {t!r}")
    r = client.completions.create(model=name, prompt="The capital of France is", temperature=0, max_tokens=8)
    check(r.object == "text_completion" and len(r.choices[0].text) > 0 and r.usage.completion_tokens == 8 and r.choices[0].finish_reason == "length",
          f"completions: {r.choices[0].text!r}")
    pieces = [c.choices[0].text for c in client.completions.create(model=name, prompt="The capital of France is", temperature=0, max_tokens=8, stream=True) if c.choices]
    check("".join(pieces) == r.choices[0].text, "streamed completion joins to the same text")
    models = client.models.list()
    check([m.id for m in models.data] == [name], f"models lists the served model: {[m.id for m in models.data]}")


def error_tests(s, name):
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    cases = [
        ("malformed JSON", dict(raw=b'{"messages": [', method="POST", path="/v1/chat/completions"), 400, None),
        ("not an object", dict(raw=b'[1, 2]', method="POST", path="/v1/chat/completions"), 400, None),
        ("a number beyond double's range", dict(raw=b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e555}',
                                                method="POST", path="/v1/chat/completions"), 400, None),
        ("empty messages", dict(body={"messages": []}), 400, "messages"),
        ("messages of the wrong type", dict(body={"messages": "hi"}), 400, "messages"),
        ("a message without role", dict(body={"messages": [{"content": "hi"}]}), 400, "messages"),
        ("an unknown role", dict(body={"messages": [{"role": "wizard", "content": "hi"}]}), 400, "messages"),
        ("temperature of the wrong type", dict(body=chat | {"temperature": "hot"}), 400, "temperature"),
        ("temperature out of range", dict(body=chat | {"temperature": 5}), 400, "temperature"),
        ("top_p 0", dict(body=chat | {"top_p": 0}), 400, "top_p"),
        ("negative top_k", dict(body=chat | {"top_k": -1}), 400, "top_k"),
        ("max_tokens 0", dict(body=chat | {"max_tokens": 0}), 400, "max_tokens"),
        ("n too large", dict(body=chat | {"n": 100}), 400, "n"),
        ("stop of the wrong type", dict(body=chat | {"stop": 5}), 400, "stop"),
        ("prompt + max_tokens beyond the context", dict(body=chat | {"max_tokens": 100000}), 400, "max_tokens"),
        ("a prompt beyond the context", dict(body={"messages": [{"role": "user", "content": "word " * 3000}]}), 400, "messages"),
        ("completions without a prompt", dict(body={"max_tokens": 3}, path="/v1/completions"), 400, "prompt"),
        ("an unknown model", dict(body=chat | {"model": "gpt-4"}), 404, "model"),
        ("an unknown path", dict(body=chat, path="/v1/nothing"), 404, None),
        ("no API key", dict(body=chat, headers={"Authorization": ""}), 401, None),
        ("a wrong API key", dict(body=chat, headers={"Authorization": "Bearer nope"}), 401, None),
        ("an oversized body", dict(raw=b'{"messages": "' + b"x" * (9 << 20) + b'"}', method="POST", path="/v1/chat/completions"), 413, None),
    ]
    for what, kw, want, param in cases:
        status, err, _ = error_of(s.request(kw.get("method", "POST"), kw.get("path", "/v1/chat/completions"), kw.get("body"),
                                            kw.get("headers"), kw.get("raw")))
        good = status == want and isinstance(err.get("message"), str) and (param is None or err.get("param") == param)
        check(good, f"{what}: HTTP {status} {err.get('type')} param={err.get('param')}: {err.get('message', '')[:90]}")
    status, _, body = s.request("GET", "/health")
    check(status == 200 and json.loads(body)["status"] == "ok", "health: ok")


def concurrency_tests(s, name):
    prompts = [f"Write one sentence about the number {i}." for i in range(16)]

    def ask(i):
        body = {"model": name, "messages": [{"role": "user", "content": prompts[i]}], "max_tokens": 20, "seed": 1000 + i,
                "temperature": 0 if i % 2 == 0 else 0.9}
        status, _, data = s.request("POST", "/v1/chat/completions", body)
        return json.loads(data)["choices"][0]["message"]["content"] if status == 200 else f"HTTP {status}"
    solo = [ask(i) for i in range(16)]
    steps, tokens = s.metric("zephyr_engine_steps_total"), s.metric("zephyr_generated_tokens_total")
    with ThreadPoolExecutor(16) as ex:
        together = list(ex.map(ask, range(16)))
    steps, tokens = s.metric("zephyr_engine_steps_total") - steps, s.metric("zephyr_generated_tokens_total") - tokens
    same = sum(a == b for a, b in zip(solo, together))
    check(same == 16 and tokens / steps > 2, f"16 concurrent clients each get their solo answer (greedy and sampled): {same}/16 equal; "
          f"{tokens / steps:.1f} tokens per engine step (batched)")


def stream_and_drop(s, max_tokens, after_chunks):
    """Starts a streaming request, reads `after_chunks` SSE events, then drops the connection."""
    sock = socket.create_connection(("127.0.0.1", s.port))
    body = json.dumps({"messages": [{"role": "user", "content": "Tell me a very long story."}], "max_tokens": max_tokens,
                       "stream": True, "temperature": 0.7, "seed": 1}).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while got.count(b"data: ") < after_chunks:
        part = sock.recv(65536)
        if not part:
            break
        got += part
    return sock


def lifecycle_tests(zephyr, model):
    s = Server(zephyr, model, "--parallel", "1", "--queue", "1")
    try:
        a = stream_and_drop(s, 3000, 3)
        busy = s.metric("zephyr_slots_busy")
        a.close()
        t0 = time.time()
        while time.time() - t0 < 10 and s.metric("zephyr_slots_busy") != 0:
            time.sleep(0.05)
        freed = time.time() - t0
        check(busy == 1 and s.metric("zephyr_slots_busy") == 0 and freed < 5,
              f"a client that disconnects mid-stream frees its slot ({freed:.2f} s; /metrics slots_busy 1 -> 0)")
        a = stream_and_drop(s, 3000, 3)  # occupies the one slot
        b = stream_and_drop(s, 3000, 0)  # waits in the queue of one
        t0 = time.time()
        while time.time() - t0 < 10 and s.metric("zephyr_queue_depth") != 1:
            time.sleep(0.05)
        status, err, headers = error_of(s.request("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}))
        check(status == 503 and headers.get("Retry-After") == "1" and err.get("code") == "overloaded",
              f"queue full: HTTP {status}, Retry-After {headers.get('Retry-After')}: {err.get('message')}")
        a.close()
        b.close()
        while time.time() - t0 < 20 and (s.metric("zephyr_slots_busy") != 0 or s.metric("zephyr_queue_depth") != 0):
            time.sleep(0.05)
        # SIGTERM with a request in flight: it finishes, new ones are refused, the server exits 0.
        sock = stream_and_drop(s, 40, 2)
        s.p.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        rest = b""
        sock.settimeout(30)
        while True:
            part = sock.recv(65536)
            if not part or b"data: [DONE]" in rest + part:
                rest += part
                break
            rest += part
        sock.close()
        code = s.p.wait(30)
        check(b"data: [DONE]" in rest and b'"finish_reason":"length"' in rest and code == 0,
              f"SIGTERM: the stream in flight ends with its finish and [DONE]; the server exits {code}"
              + ("" if b"data: [DONE]" in rest else f" (the stream's last bytes: {rest[-200:]!r})"))
    finally:
        s.close()


def main():
    global Z, MODEL
    a = parse_args()
    Z, MODEL = a.zephyr, a.gguf
    s = Server(Z, MODEL, "--api-key", KEY, "--ctx", "1024", "--parallel", "8", "--model-name", "smollm2")
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{s.port}/v1", api_key=KEY, max_retries=0)
        api_tests(s, client, "smollm2")
        error_tests(s, "smollm2")
        concurrency_tests(s, "smollm2")
    finally:
        s.close()
    lifecycle_tests(Z, MODEL)
    finish("server")


if __name__ == "__main__":
    main()

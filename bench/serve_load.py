"""Load on an OpenAI-compatible server: C concurrent clients, each streaming R completions of
max_tokens tokens (ignore_eos, so every runner generates the same count) through
/v1/completions. Prints JSON: aggregate generated tokens/s over the wall time, p50/p95 time to
first token, each stream's decode rate after its first token (median), and the tokens counted
(SSE chunks with text, or usage when sent).
usage: python3 serve_load.py PORT CLIENTS REQUESTS_PER_CLIENT MAX_TOKENS [SCHEMA.json]
With a schema the answers are constrained to it: sent both as OpenAI's response_format and as
llama-server's json_schema field (each server reads its own). BENCH_MODELS=a,b,...: client i
asks for model i mod their count (the base and LoRA adapters served beside it)."""
import http.client
import json
import os
import statistics
import sys
import threading
import time

port, clients, per_client, max_tokens = (int(x) for x in sys.argv[1:5])
schema = json.load(open(sys.argv[5])) if len(sys.argv) > 5 else None
models = [m for m in os.environ.get("BENCH_MODELS", "").split(",") if m]
ttft, tokens, errors, decode = [], [], [], []
lock = threading.Lock()


def client(i):
    for k in range(per_client):
        req = {"prompt": f"Request {i}.{k}: write a long story about the sea and the ships that sail on it.",
               "max_tokens": max_tokens, "temperature": 0.7, "seed": i * 1000 + k, "stream": True,
               "ignore_eos": True, "stream_options": {"include_usage": True}}
        if models:
            req["model"] = models[i % len(models)]
        if schema:
            req["response_format"] = {"type": "json_schema", "json_schema": {"name": "bench", "schema": schema}}
            req["json_schema"] = schema
            req["ignore_eos"] = False  # the answer ends with the value (llama-server fails past a finished grammar)
        body = json.dumps(req)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        t0 = time.time()
        c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            with lock:
                errors.append(f"HTTP {r.status}: {r.read()[:200]!r}")
            continue
        first, chunks, usage, buf = None, 0, None, b""
        while True:
            line = r.readline()
            if not line:
                break
            if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                continue
            d = json.loads(line[6:])
            if d.get("usage"):
                usage = d["usage"]["completion_tokens"]
            for ch in d.get("choices", []):
                if ch.get("text"):
                    chunks += 1
                    if first is None:
                        first = time.time() - t0
        c.close()
        end = time.time() - t0
        with lock:
            if first is not None and chunks > 1:
                decode.append((chunks - 1) / (end - first))
            ttft.append(first if first is not None else float("nan"))
            tokens.append(usage if usage else chunks)


t0 = time.time()
threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.time() - t0
q = sorted(ttft)
print(json.dumps({"clients": clients, "requests": len(tokens), "tokens": sum(tokens), "wall_s": round(wall, 3),
                  "tok_per_s": round(sum(tokens) / wall, 2), "ttft_p50_s": round(statistics.median(q), 3) if q else None,
                  "ttft_p95_s": round(q[min(len(q) - 1, int(0.95 * len(q)))], 3) if q else None,
                  "stream_decode_tok_per_s": round(statistics.median(decode), 2) if decode else None, "errors": errors[:3]}))

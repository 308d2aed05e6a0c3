"""`zephyr feedback generate | judge | binarize`, the whole AIF chain:
- generators: two `zephyr serve` endpoints on loopback (tiny random models, API key from an
  environment variable) and a local model directory, 2 samples each;
- an `exec:` judge of known scores: binarization is exact (chosen the maximum, rejected strictly
  lower, ties and single-scored prompts dropped and counted, same seed same pairs);
- a flaky endpoint (5xx, garbage, timeouts) is retried with backoff, then recorded as failed;
- generate killed with SIGKILL midway and rerun gives the rows an uninterrupted run gives;
- the API key appears in no output and no log; `zephyr dpo` trains on the pairs as written;
- SmolLM2 as a model judge through `zephyr serve` (structured outputs): every judgment parses.
Run with the reference venv."""
import hashlib
import http.server
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serve"))
from check_server import Server, check  # noqa: E402
import check_server  # noqa: E402
from fixtures import mistral_tokenizer_dir  # noqa: E402

SECRET = "sk-feedback-secret-4f1c"
JUDGE = """#!/usr/bin/env python3
import hashlib, json, sys
q = json.load(sys.stdin)
user = q["messages"][-1]["content"]
if "TIE" in user:
    scores = [5 for _ in q["completions"]]
else:
    scores = [1 + int(hashlib.sha1(c.encode()).hexdigest()[:4], 16) % 10 for c in q["completions"]]
print(json.dumps({"scores": [{"overall": s, "helpfulness": min(5, s)} for s in scores]}))
"""


def known_score(c):
    return 1 + int(hashlib.sha1(c.encode()).hexdigest()[:4], 16) % 10


def run(args, **kw):
    env = dict(os.environ, ZEPHYR_FB_KEY=SECRET)
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=kw.pop("timeout", 600), **kw)


def rows(path):
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []


def canon(path, drop=()):
    return sorted(json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True) for r in rows(path))


class Flaky(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that fails: the first call for each prompt gets a 503, prompts
    with GARBAGE always get a body that is not JSON, prompts with SLOW never answer in time."""
    seen = set()
    calls = 0

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.reply(200, json.dumps({"object": "list", "data": [{"id": "flaky"}]}))

    def do_POST(self):
        Flaky.calls += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][-1]["content"]
        if "SLOW" in text:
            time.sleep(3)
            return self.reply(200, "{}")
        if "GARBAGE" in text:
            return self.reply(200, "<html>not json")
        if text not in Flaky.seen:
            Flaky.seen.add(text)
            return self.reply(503, json.dumps({"error": {"message": "busy"}}))
        self.reply(200, json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok: " + text},
                                                 "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}))

    def reply(self, status, body):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    a = check_server.parse_args(models=True)
    z = a.zephyr
    with tempfile.TemporaryDirectory() as tmp:
        tok = mistral_tokenizer_dir(a.models, os.path.join(tmp, "tok"))
        tiny = []
        for seed in (1, 2, 3):
            d = os.path.join(tmp, f"tiny{seed}")
            subprocess.run([z, "init", "-o", d, "--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--intermediate", "128",
                            "--tokenizer", tok, "--seed", str(seed), "--max-position", "2048"], check=True, capture_output=True)
            tiny.append(d)
        prompts = os.path.join(tmp, "prompts.jsonl")
        with open(prompts, "w") as f:
            for i in range(12):
                f.write(json.dumps({"prompt": f"Question {i}: tell me something{' TIE' if i == 3 else ''}."}) + "\n")
            f.write(json.dumps({"prompt_id": "multi", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                                                                   {"role": "user", "content": "And now?"}]}) + "\n")
        judge = os.path.join(tmp, "judge.py")
        with open(judge, "w") as f:
            f.write(JUDGE)
        os.chmod(judge, 0o755)
        servers = [Server(z, tiny[0], "--api-key", SECRET, "--model-name", "gen-a"), Server(z, tiny[1], "--api-key", SECRET, "--model-name", "gen-b")]
        try:
            gen_args = [z, "feedback", "generate", "--prompts", prompts, "--model", f"http://127.0.0.1:{servers[0].port}/v1#gen-a",
                        "--model", f"http://127.0.0.1:{servers[1].port}/v1", "--model", tiny[2], "--completions-per-model", "2",
                        "--max-tokens", "24", "--temperature", "0.9", "--seed", "5", "--api-key-env", "ZEPHYR_FB_KEY", "--concurrency", "4"]
            full = os.path.join(tmp, "c_full.jsonl")
            p = run(gen_args + ["--out", full])
            logs = p.stderr
            got = rows(full)
            check(p.returncode == 0 and len(got) == 13 * 3 * 2 and all(r.get("completion") is not None for r in got),
                  f"generate: 13 prompts x 3 generators x 2 samples = {len(got)} completions ({p.stderr.strip().splitlines()[-1] if p.stderr else ''})")
            models = sorted({r["model"] for r in got})
            check(len(models) == 3 and any(m.endswith("#gen-a") for m in models), f"three generators recorded by spec: {models}")
            multi = [r for r in got if r["prompt_id"] == "multi"][0]
            check(len(multi["messages"]) == 3 and multi["messages"][-1]["content"] == "And now?", "a {messages} prompt keeps its turns and its prompt_id")

            # Killed midway, then resumed: the same rows as the uninterrupted run.
            killed = os.path.join(tmp, "c_killed.jsonl")
            env = dict(os.environ, ZEPHYR_FB_KEY=SECRET)
            proc = subprocess.Popen(gen_args[:-2] + ["--concurrency", "1", "--out", killed], stderr=subprocess.PIPE, text=True, env=env)
            while len(rows(killed)) < 20 and proc.poll() is None:
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            partial = len(rows(killed))
            with open(killed, "a") as f:
                f.write('{"prompt_id": "torn')  # a row cut off mid-write
            p = run(gen_args + ["--out", killed])
            logs += p.stderr
            check(p.returncode == 0 and 0 < partial < 78 and canon(killed) == canon(full),
                  f"SIGKILL after {partial} rows (and a torn line), rerun: the same {len(rows(killed))} rows as an uninterrupted run, none twice")

            # A config listing generators with their own settings; the flags fill in the rest.
            cfg = os.path.join(tmp, "gen.yaml")
            with open(cfg, "w") as f:
                f.write(f"prompts: {prompts}\ngenerators:\n"
                        f"  - model: http://127.0.0.1:{servers[0].port}/v1#gen-a\n    api_key_env: ZEPHYR_FB_KEY\n    completions: 3\n"
                        f"    temperature: 0\n    max_tokens: 8\n"
                        f"  - model: {tiny[2]}\n")
            cfg_out = os.path.join(tmp, "c_cfg.jsonl")
            p = run([z, "feedback", "generate", "--config", cfg, "--out", cfg_out, "--max-tokens", "12"])
            got = rows(cfg_out)
            by = {m: [r for r in got if r["model"] == m] for m in {r["model"] for r in got}}
            a_rows = next(v for k, v in by.items() if k.endswith("#gen-a"))
            b_rows = next(v for k, v in by.items() if k == tiny[2])
            check(p.returncode == 0 and len(a_rows) == 13 * 3 and len(b_rows) == 13 and
                  all(r["usage"]["completion_tokens"] <= 8 for r in a_rows) and max(r["usage"]["completion_tokens"] for r in b_rows) > 8,
                  "--config: each generator's completions and max_tokens, the flags for the rest")
            bad = os.path.join(tmp, "bad.yaml")
            with open(bad, "w") as f:
                f.write("generators:\n  - completions: 2\n")
            p = run([z, "feedback", "generate", "--config", bad, "--prompts", prompts, "--out", os.path.join(tmp, "y.jsonl")])
            check(p.returncode != 0 and "generators[0]" in p.stderr and "model" in p.stderr, f"a generator without a model: {p.stderr.strip()}")

            reviews = os.path.join(tmp, "r.jsonl")
            p = run([z, "feedback", "judge", "--in", full, "--judge", f"exec:{judge}", "--out", reviews])
            judged = rows(reviews)
            check(p.returncode == 0 and len(judged) == 13 and all(r["error"] is None for r in judged),
                  f"exec judge: {len(judged)} prompts rated")
            # Rows split on "\n" only: str.splitlines() also splits on U+2028 and U+0085, which the
            # JSON rows carry raw when a model writes them (a random tiny model did).
            lines = [x + "\n" for x in open(reviews, encoding="utf-8", newline="").read().split("\n")[:-1]]
            with open(reviews, "w", encoding="utf-8", newline="") as f:
                f.writelines(lines[:5])
                f.write(lines[5][:30])  # killed while writing row 6
            p = run([z, "feedback", "judge", "--in", full, "--judge", f"exec:{judge}", "--out", reviews])
            check(p.returncode == 0 and sorted(open(reviews, encoding="utf-8", newline="").read().split("\n")[:-1]) ==
                  sorted(x[:-1] for x in lines) and
                  "5 done (0 from an earlier run)" not in p.stderr and "(5 from an earlier run)" in p.stderr,
                  "judge resumed after a torn row: the 5 whole rows kept, the rest judged once")
            exact = all(c["scores"]["overall"] == (5 if "TIE" in r["messages"][-1]["content"] else known_score(c["completion"]))
                        for r in judged for c in r["completions"])
            check(exact, "the judge's scores are recorded per completion")
            outs = {}
            for seed in ("7", "7", "8"):
                pairs = os.path.join(tmp, f"pairs{len(outs)}.jsonl")
                p = run([z, "feedback", "binarize", "--in", reviews, "--out", pairs, "--seed", seed])
                outs[len(outs)] = (pairs, p.stderr)
            pairs = rows(outs[0][0])
            ok = True
            for pr in pairs:
                src = next(r for r in judged if r["prompt_id"] == pr["prompt_id"])
                scores = [c["scores"]["overall"] for c in src["completions"]]
                ok &= pr["score_chosen"] == max(scores) and pr["score_rejected"] < pr["score_chosen"]
                ok &= pr["chosen"][-1]["content"] in [c["completion"] for c in src["completions"] if c["scores"]["overall"] == max(scores)]
                ok &= pr["chosen"][:-1] == src["messages"] and pr["rejected"][:-1] == src["messages"]
            ties = sum(1 for r in judged if len({c["scores"]["overall"] for c in r["completions"]}) == 1)
            check(ok and len(pairs) == 13 - ties and ties >= 1 and f"dropped {ties} prompts whose scores all tie" in outs[0][1],
                  f"binarize: chosen the maximum, rejected strictly lower, {ties} all-tie prompt(s) dropped and counted, {len(pairs)} pairs")
            check(open(outs[0][0]).read() == open(outs[1][0]).read(), "the same seed gives the same pairs")

            # The pairs train as written.
            dpo_out = os.path.join(tmp, "dpo")
            p = run([z, "dpo", "--model_name_or_path", tiny[2], "--dataset_path", outs[0][0], "--max_steps", "2", "--per_device_train_batch_size", "2",
                     "--learning_rate", "1e-4", "--output_dir", dpo_out, "--logging_steps", "1"])
            check(p.returncode == 0 and os.path.exists(os.path.join(dpo_out, "model.safetensors")), "zephyr dpo trains on the pairs file as written",)

            leaked = [f for f in os.listdir(tmp) if f.endswith(".jsonl") and SECRET in open(os.path.join(tmp, f)).read()]
            check(not leaked and SECRET not in logs, f"the API key is in no output file and no log ({leaked})")
            p = run([z, "feedback", "generate", "--prompts", prompts, "--model", f"http://127.0.0.1:{servers[0].port}/v1", "--api-key-env",
                     "ZEPHYR_FB_UNSET_VAR", "--out", os.path.join(tmp, "x.jsonl")])
            check(p.returncode != 0 and "ZEPHYR_FB_UNSET_VAR" in p.stderr and SECRET not in p.stderr,
                  f"an unset key variable is named: {p.stderr.strip()}")
        finally:
            for s in servers:
                s.close()

        # A flaky endpoint: retried with backoff, then recorded.
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        fp = os.path.join(tmp, "flaky_prompts.jsonl")
        with open(fp, "w") as f:
            for t in ("fine one", "fine two", "GARBAGE please", "SLOW please"):
                f.write(json.dumps({"prompt": t}) + "\n")
        out = os.path.join(tmp, "flaky.jsonl")
        p = run([z, "feedback", "generate", "--prompts", fp, "--model", f"http://127.0.0.1:{httpd.server_address[1]}/v1", "--out", out,
                 "--max-retries", "2", "--retry-base-ms", "50", "--timeout", "1"])
        httpd.shutdown()
        got = {r["messages"][0]["content"]: r for r in rows(out)}
        check(p.returncode == 0 and got["fine one"].get("completion") == "ok: fine one" and got["fine two"].get("completion") == "ok: fine two",
              "a 503 is retried and the answer recorded")
        check(got["GARBAGE please"].get("completion") is None and "after 2 retries" in got["GARBAGE please"].get("error", "") and
              got["SLOW please"].get("completion") is None and "after 2 retries" in got["SLOW please"].get("error", ""),
              f"garbage and timeouts: retried twice, then recorded as failed ({got['SLOW please'].get('error')})")
        check("2 failed" in p.stderr and "retries" in p.stderr, f"the summary counts them: {p.stderr.strip().splitlines()[-1]}")

        # SmolLM2 as the judge, through the server with structured outputs.
        s = Server(z, a.gguf, "--model-name", "smollm2", "--ctx", "4096")
        try:
            small = os.path.join(tmp, "small.jsonl")
            with open(small, "w") as f:  # the same 3 prompts x 2 completions whatever order generate wrote
                picked = sorted(rows(full), key=lambda r: (r["prompt_id"], r["model"], r["sample"]))
                ids = sorted({r["prompt_id"] for r in picked})[:3]
                for pid in ids:
                    for r in [r for r in picked if r["prompt_id"] == pid][:2]:
                        f.write(json.dumps(r) + "\n")
            rev = os.path.join(tmp, "smol_r.jsonl")
            p = run([z, "feedback", "judge", "--in", small, "--judge", f"http://127.0.0.1:{s.port}/v1", "--out", rev, "--max-tokens", "1024"])
            got = rows(rev)
            check(p.returncode == 0 and got and all(r["error"] is None for r in got) and
                  all(1 <= c["scores"]["overall"] <= 10 and 1 <= c["scores"]["helpfulness"] <= 5 for r in got for c in r["completions"]),
                  f"SmolLM2 judging through zephyr serve: {len(got)} judgments, every one parsed "
                  f"(e.g. {got[0]['completions'][0]['scores'] if got else None}; errors: {[r['error'] for r in got if r['error']]}; "
                  f"{p.stderr.strip()[-300:]})")
        finally:
            s.close()
    check_server.finish("feedback")


if __name__ == "__main__":
    main()

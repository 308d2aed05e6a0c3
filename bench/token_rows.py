"""Writes N rows of SEQ random token ids below VOCAB ({"input_ids": [...]}, seeded) for the
training benchmarks."""
import json
import random
import sys

out, n, seq, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
random.seed(0)
with open(out, "w") as f:
    for _ in range(n):
        f.write(json.dumps({"input_ids": [random.randrange(vocab) for _ in range(seq)]}) + "\n")

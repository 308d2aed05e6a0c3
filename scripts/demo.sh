#!/usr/bin/env bash
# `make demo`: the Zephyr recipe end to end on a real small chat model (recipes/smol): the base
# SmolLM2-135M-Instruct, the teacher's data filtered as Zephyr-beta's, dSFT, AI feedback from four
# generators rated by the rule judge, dDPO from dSFT and from the base, MT-Bench- and
# AlpacaEval-style evaluation of all four, and the report, which ends with the final model
# answering the model card's prompt.
set -euo pipefail
zephyr=${1:-build/bin/zephyr}
out=${2:-runs/smol}
start=$(date +%s)
"$zephyr" recipe run recipes/smol --out "$out" >/dev/null
echo
echo "demo done in $(( $(date +%s) - start )) s: $out/report.md, with radar.svg and training.svg beside it."
echo "Chat with the final model: $zephyr chat -m $out/dsft_ddpo"
echo
cat "$out/report.md"

#!/usr/bin/env bash
# PyPI's current torch (with ~3 GB of CUDA libraries it does not use here) plus transformers and
# peft, in $1/torch-pypi (default .ref): the anchor bench/lora_step.sh compares against beside
# Debian's torch. Benchmarks only; no test needs it.
set -euo pipefail
dest=${1:-.ref}
[ -x "$dest/torch-pypi/bin/python" ] || /usr/bin/python3 -m venv "$dest/torch-pypi"
"$dest/torch-pypi/bin/pip" install -q --disable-pip-version-check torch==2.15.0 numpy==1.26.4 transformers==4.44.2 \
  peft==0.12.0 accelerate==0.33.0

